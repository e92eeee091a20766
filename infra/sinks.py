"""The one interface every output sink offers: write a batch, flush, close; backpressure as an exception.

A sink that cannot take a batch *now* (its server is slow, unreachable for a moment, or did not confirm the
write concern) raises :class:`SinkBackpressure` with a hint of how long to wait, as quix-streams'
``SinkBackpressureError`` does; the caller waits that long and offers the same batch again
(:func:`write_through_backpressure`). So sinks must write idempotently (a batch offered twice leaves what
one write leaves), and a sink that gives up for good raises something else (e.g. ``ServiceUnavailableError``).
The interface lives on the floor because the worker's document sinks, the MES sink and the part decisions
(siblings at floor 3) all write batches this way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

T_contra = TypeVar("T_contra", contravariant=True)


class SinkBackpressure(Exception):
    """The sink took nothing of this batch; offer it again after ``retry_after_s``."""

    def __init__(self, retry_after_s: float, reason: str = "") -> None:
        super().__init__(reason or f"sink busy; retry in {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


@runtime_checkable
class Sink(Protocol[T_contra]):
    def write_batch(self, items: Sequence[T_contra]) -> None:
        """Write ``items``; returns once they are durable as the sink defines it, or raises
        :class:`SinkBackpressure` having written nothing that a retry would not rewrite identically."""

    def flush(self, timeout_s: float) -> None:
        """Push out anything buffered, waiting at most ``timeout_s``."""

    def close(self) -> None:
        """Release what the sink owns (not clients it was given)."""


def write_through_backpressure(
    sink: Sink[T_contra],
    items: Sequence[T_contra],
    give_up: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Offer ``items`` to ``sink`` until it takes them, waiting each time as long as it asked.

    Raises the last :class:`SinkBackpressure` when ``give_up()`` turns true (the caller is stopping: its
    records stay uncommitted and are read again). The sink bounds its own patience by raising another error.
    """
    while True:
        try:
            sink.write_batch(items)
            return
        except SinkBackpressure as exc:
            if give_up():
                raise
            sleep(exc.retry_after_s)


def close_all(sinks: Iterable[Sink[T_contra]], timeout_s: float) -> None:
    """Flush, then close, every sink (a close never drops what a flush would still have written)."""
    for sink in sinks:
        sink.flush(timeout_s)
        sink.close()
