"""Periodic faults for the soak (``bench/bench_soak.py``): the worker's MongoDB link runs through a fault
proxy (:mod:`chaos.netproxy`) and every ``every_s`` one fault hits it, the kinds in turn: a partition, a
reset, added latency, a half-open. The worker process lives through all of them, so its memory and file
descriptors keep one series across the run (a worker kill would restart both), while each fault exercises
where a leak would hide: retried batches, dropped and reopened connection pools, the sink's backpressure.

Each fault's window is kept; a soak sample that overlaps one (or the ``grace_s`` after it, the recovery) is
a fault sample, left out of the latency and lag figures that are judged "outside fault windows"
(:func:`overlaps`, pure).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from chaos.netproxy import FaultProxy

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("partition", "reset", "latency", "half_open")


@dataclass(frozen=True, slots=True)
class FaultWindow:
    kind: str
    started: float  # time.monotonic()
    ended: float  # the injection's time for a reset or a half-open


def overlaps(start: float, end: float, windows: list[FaultWindow], grace_s: float) -> bool:
    """Whether [start, end] meets any window stretched by ``grace_s`` after its end (pure)."""
    return any(start <= w.ended + grace_s and w.started <= end for w in windows)


def kind_at(index: int, kinds: tuple[str, ...] = KINDS) -> str:
    """The ``index``-th fault's kind: the kinds in turn (pure)."""
    return kinds[index % len(kinds)]


class PeriodicFaults:
    """On a thread: every ``every_s`` (first one ``every_s`` after :meth:`start`) one fault of ``fault_s`` on
    ``proxy``; :attr:`windows` lists what was done. ``every_s`` 0 or less: no faults."""

    def __init__(
        self,
        proxy: FaultProxy,
        every_s: float,
        fault_s: float,
        latency_ms: float = 300.0,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.proxy = proxy
        self.every_s = every_s
        self.fault_s = fault_s
        self.latency_ms = latency_ms
        self.kinds = kinds
        self.windows: list[FaultWindow] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-faults", daemon=True)

    def start(self) -> PeriodicFaults:
        if self.every_s > 0:
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.fault_s + 10)
        self.proxy.clear()

    def _run(self) -> None:
        index = 0
        next_at = time.monotonic() + self.every_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self._inject(kind_at(index, self.kinds))
            index += 1
            next_at += self.every_s

    def _inject(self, kind: str) -> None:
        started = time.monotonic()
        log.info("soak fault: mongodb %s", kind)
        if kind == "reset":
            self.proxy.reset()
        elif kind == "half_open":
            self.proxy.half_open()
        else:
            if kind == "latency":
                self.proxy.latency(self.latency_ms)
            else:
                self.proxy.partition(True)
            self._stop.wait(self.fault_s)
            self.proxy.clear()
        self.windows.append(FaultWindow(kind, started, time.monotonic()))
