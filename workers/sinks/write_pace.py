"""How the document sink paces its writes and when it stops waiting for a store (pure, no I/O).

Two kinds of trouble look alike from a failed write and need opposite answers:

- the store is **unreachable** (refused connections, no server selected, a probe that does not answer): the
  worker should give up after a few attempts so that its records stay uncommitted and the operator sees a
  clear exit;
- the store is **up but slow** (a write timed out on its socket while a ping answers at once): e.g. FerretDB
  on SQLite rewrites a replayed document with a scan of the whole table, so rewriting a full batch of 64
  after a restart takes longer than the 5 s socket timeout at ~90 k documents. Giving up there restarts
  the worker into the same replay: a restart loop (measured by the 150 frames/s soak). The answer is
  backpressure: send fewer documents per request until one fits the timeout, and keep waiting as long as
  writes make progress.

:class:`ChunkPace` is the request size (multiplicative decrease on a timeout, growth back once requests are
quick); :class:`FailureRun` is the patience (attempts for an unreachable store, time without progress for
a slow one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CHUNK = 1024  # above any worker batch: by default a batch goes in one request


@dataclass
class ChunkPace:
    """Documents per request: halved on every timed-out request (down to one), doubled back after a request
    that took under a quarter of the socket timeout, so a request keeps a wide margin under it."""

    socket_timeout_s: float
    size: int = MAX_CHUNK
    ceiling: int = MAX_CHUNK

    def timed_out(self, attempted: int) -> None:
        # halve what was actually sent: a batch of 40 that timed out at size 1024 goes on at 20
        self.size = max(1, min(self.size, attempted) // 2)

    def took(self, seconds: float) -> None:
        if seconds < self.socket_timeout_s / 4 and self.size < self.ceiling:
            self.size = min(self.ceiling, self.size * 2)


@dataclass
class FailureRun:
    """A run of failed write attempts in a row, and whether it is time to give up.

    An unreachable store ends the run after ``attempts`` failures (as before: ~50 s with the client's
    timeouts, which outlasts a 30 s partition). A slow store never counts towards ``attempts``; it ends the
    run only after ``slow_patience_s`` without one acknowledged request, so a store that takes even single
    documents for ever still ends in a clear error, but one that is merely slow holds the worker back.
    """

    attempts: int = 5
    slow_patience_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    unreachable: int = 0
    slow: int = 0
    progress_at: float | None = field(default=None)  # the last acknowledged request (or the run's start)

    def progressed(self) -> None:
        """A request was acknowledged: the store is taking documents."""
        self.unreachable = 0
        self.slow = 0
        self.progress_at = self.clock()

    def succeeded(self) -> None:
        """The whole batch is durable: the run is over."""
        self.unreachable = 0
        self.slow = 0
        self.progress_at = None

    def failed(self, store_answers: bool) -> bool:
        """Count one failed attempt; True when the sink should give up."""
        if self.progress_at is None:
            self.progress_at = self.clock()
        if store_answers:
            self.slow += 1
            return self.clock() - self.progress_at >= self.slow_patience_s
        self.unreachable += 1
        return self.unreachable >= self.attempts

    @property
    def in_a_row(self) -> int:
        return self.unreachable + self.slow

    def backoff_s(self) -> float:
        """0.2 s doubling to 5 s with the failures in a row."""
        return min(0.2 * 2 ** (max(self.in_a_row, 1) - 1), 5.0)
