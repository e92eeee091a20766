"""The PostgreSQL outage fault: the server stops (``pg_ctl stop -m immediate``: connections cut as in a
crash) for the body of the ``with`` and comes back on the same port and data afterwards."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lineguard.stack.postgres import PostgresServer

log = logging.getLogger(__name__)


@contextmanager
def postgres_outage(server: PostgresServer, min_down_s: float = 0.0) -> Iterator[None]:
    log.info("fault: PostgreSQL on port %d goes down", server.port)
    server.stop(mode="immediate")
    down_at = time.monotonic()
    try:
        yield
    finally:
        time.sleep(max(0.0, min_down_s - (time.monotonic() - down_at)))
        server.start()
        log.info("fault: PostgreSQL is back after %.1f s", time.monotonic() - down_at)
