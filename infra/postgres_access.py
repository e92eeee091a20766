"""Connecting to PostgreSQL: a refused login is the user's to fix (ConfigurationError, exit 2), an unreachable
server is waited for (bounded) and a lost connection is an outage the caller pauses through.

Shared by the MES sink (``mes/``, which writes) and the PostgreSQL report source (``quality/``, which reads):
siblings on one floor, so the piece they share lives here. Messages never hold the URI, which may carry the
password.
"""

from __future__ import annotations

import logging
import time

import psycopg

from schemas.errors import ConfigurationError

log = logging.getLogger(__name__)

# libpq reports a refused login without an SQLSTATE on the client side: these are its words for it
_REFUSED = ("password authentication failed", "does not exist", "no pg_hba.conf entry", "permission denied")


def refused(exc: psycopg.OperationalError) -> ConfigurationError | None:
    """The ConfigurationError for a login the server refused; None for any other failure (an outage)."""
    text = str(exc)
    for words in _REFUSED:
        if words in text:
            reason = text.split("FATAL:", 1)[-1].strip().splitlines()[0]
            return ConfigurationError(f"PostgreSQL refused the login ({reason}): check POSTGRES_URI")
    return None


def connect(uri: str, timeout_s: float = 30.0) -> psycopg.Connection:
    """A connection (autocommit off); waits up to ``timeout_s`` for a server that does not answer yet."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        try:
            return psycopg.connect(uri, connect_timeout=5)
        except psycopg.OperationalError as exc:
            refusal = refused(exc)
            if refusal is not None:
                raise refusal from None
            if time.monotonic() + delay > deadline:
                reason = str(exc).splitlines()[0].split("failed:", 1)[-1].strip()
                raise ConfigurationError(
                    f"cannot reach PostgreSQL after {timeout_s:.0f} s ({reason}): is POSTGRES_URI right?"
                ) from None
            log.info("PostgreSQL not reachable yet; retrying in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
