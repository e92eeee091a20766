"""librdkafka's own log lines, through Python logging and rate-limited.

Left alone, librdkafka prints to stderr, once per reconnect attempt: an unreachable broker floods the terminal
of a camera that is calmly spooling. Routed through a Python logger, its lines follow the CLI's log format
and level, and each kind of line (librdkafka's "facility", e.g. FAIL) is shown at most once per interval;
lineguard's own log says what matters (broker unreachable, spooling, draining).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

LOGGER_NAME = "streams.librdkafka"


class RateLimitPerFacility(logging.Filter):
    """Let one record per librdkafka facility through every ``interval_s`` seconds."""

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._next_allowed: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        # confluent-kafka logs ("%s [%s] %s", facility, client name, message).
        facility = (
            str(record.args[0]) if isinstance(record.args, tuple) and record.args else record.getMessage()
        )
        now = self._clock()
        if now < self._next_allowed.get(facility, 0.0):
            return False
        self._next_allowed[facility] = now + self.interval_s
        return True


def librdkafka_logger(interval_s: float = 30.0) -> logging.Logger:
    """The logger to pass as confluent-kafka's ``logger`` setting (one shared, rate-limited logger)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RateLimitPerFacility) for f in logger.filters):
        logger.addFilter(RateLimitPerFacility(interval_s))
    return logger
