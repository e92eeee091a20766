"""``lineguard lag``: consumer lag of the workers' group read from the broker, not from the workers."""
