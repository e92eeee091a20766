"""``lineguard tail TOPIC``: any lineguard topic as JSON lines, for people and scripts."""
