"""The floor every side stands on: how a process reaches its servers and talks to them safely.

Settings objects, endpoint resolution (environment first), Kafka topic administration, access checks for
Kafka and MongoDB, the claim-check store for frames too large for a record, and log formatting. `vision`,
`streams`, `workers`, `parts`, `quality` and `mes` import from here; nothing here imports them, and nothing
below the `lineguard` package (the CLI, demo, console and local dev stack on top) ever imports it.
"""
