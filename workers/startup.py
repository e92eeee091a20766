"""Waiting for a service at start-up: a worker (re)started while MongoDB is briefly away waits for it.

Containers and supervisors start workers in any order, and a worker restarted during a database restart would
otherwise exit at once and be restarted in a loop. A refused login is not waited for: it is the user's to fix
(:class:`~schemas.errors.ConfigurationError` passes straight through).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from schemas.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_PAUSE_S = 1.0
_MAX_PAUSE_S = 10.0


def wait_for_service(
    attempt: Callable[[], T],
    what: str,
    timeout_s: float,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``attempt()`` until it stops raising :class:`ServiceUnavailableError`; returns its value.

    Tries again, with growing pauses, for ``timeout_s`` in all (an attempt may itself wait, e.g. for server
    selection); the last error is raised once the time is up or ``stop`` is set. ``timeout_s=0``: one attempt.
    """
    deadline = clock() + timeout_s
    pause = _FIRST_PAUSE_S
    tries = 1
    while True:
        try:
            return attempt()
        except ServiceUnavailableError as exc:
            left = deadline - clock()
            if left <= 0 or stop.is_set():
                raise
            log.warning("%s (attempt %d); trying again for up to %.0f s more", exc, tries, left)
        # Event.wait, not sleep: a SIGTERM during the wait ends it at once.
        if stop.wait(min(pause, max(0.0, deadline - clock()))):
            raise ServiceUnavailableError(f"stopped while waiting for {what}")
        pause = min(pause * 2, _MAX_PAUSE_S)
        tries += 1
