"""Schema migrations as plain versioned SQL files (``migrations/NNN_name.sql``), applied once each, in order.

Each file runs in its own transaction together with its row in ``schema_migrations``, under an advisory
lock, so two sinks starting at once apply a migration exactly once.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

log = logging.getLogger(__name__)

_LOCK_KEY = 0x4C47_4D45  # "LGME": any constant shared by every sink


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, by version."""
    found = []
    for entry in resources.files("mes").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(connection: psycopg.Connection) -> list[str]:
    """Apply the migrations the database lacks; returns the names applied."""
    applied: list[str] = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            connection.execute(sql)  # trusted, shipped SQL
            connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            log.info("applied migration %s", name)
            applied.append(name)
    return applied
