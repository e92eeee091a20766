"""The relational sink for the MES: rows and window counts in PostgreSQL (`lineguard sink postgres`).

A consumer of the results topic of its own; nothing lower than the CLI imports it.
"""
