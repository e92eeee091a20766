"""What the network-fault run and the rebalance storm share: a supervised group of worker processes, the
wait until every frame is done, the outside audit and the latency of each result.

Separate from :mod:`chaos.harness` (which owns a whole private stack and kills its services): these runs use
the shared MongoDB (a database of their own) and either a broker of their own behind a proxy
(:mod:`chaos.private_kafka`) or the shared one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from chaos.audit import AuditFigures, audit
from chaos.outputs import read_outputs
from chaos.recovery import ProgressClock
from chaos.worker_process import WorkerProcess
from schemas.records import Frame
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


class WorkerGroup:
    """Worker processes by slot; a supervisor thread restarts (and counts) exits nobody asked for, unless
    the slot was stopped on purpose (:meth:`stop_slot`)."""

    def __init__(self, processes: list[WorkerProcess]) -> None:
        self.processes = processes
        self.lock = threading.Lock()
        self.parked: set[int] = set()  # slots stopped on purpose
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="chaos-supervisor", daemon=True)

    def start(self, slots: list[int] | None = None) -> None:
        with self.lock:
            for slot in range(len(self.processes)) if slots is None else slots:
                self.processes[slot].start()
                self.parked.discard(slot)
        if not self._thread.is_alive():
            self._thread.start()

    def start_slot(self, slot: int) -> None:
        self.start([slot])

    def stop_slot(self, slot: int, graceful: bool) -> None:
        with self.lock:
            self.parked.add(slot)
            process = self.processes[slot]
            if graceful:
                process.terminate(60.0)
            else:
                process.kill()

    def pids(self) -> list[int]:
        with self.lock:
            return [pid for process in self.processes if (pid := process.pid) is not None]

    def running(self) -> list[int]:
        with self.lock:
            return [slot for slot, process in enumerate(self.processes) if process.running()]

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self.lock:
                for slot, process in enumerate(self.processes):
                    if slot in self.parked:
                        continue
                    code = process.check()
                    if code is not None:
                        log.warning(
                            "worker %s exited on its own (%s): restarting", process.options.worker_id, code
                        )
                        process.start()

    @property
    def unplanned_exits(self) -> int:
        return sum(len(process.unplanned_exits) for process in self.processes)

    def stop_all(self) -> list[int | None]:
        self._stop.set()
        self._thread.join(5)
        with self.lock:
            codes = [process.terminate(60.0) for process in self.processes]
            for process in self.processes:
                if process.running():
                    process.kill()
            return codes


def wait_until_done(
    frames: int, clock: ProgressClock, collection: Any, busy: Callable[[], bool], idle_timeout_s: float
) -> bool:
    """Until every frame has a document and a committed result (True), or nothing moved for
    ``idle_timeout_s`` after ``busy()`` turned false (False)."""
    seen, since = (-1, -1), time.monotonic()
    while True:
        time.sleep(0.5)
        if busy():
            since = time.monotonic()
            continue
        try:
            documents = collection.estimated_document_count()
        except Exception:  # MongoDB or its link may still be coming back
            continue
        results = len(clock.results)
        if documents >= frames and results >= frames:
            return True
        if (documents, results) != seen:
            seen, since = (documents, results), time.monotonic()
        elif time.monotonic() - since > idle_timeout_s:
            log.error("no progress for %.0f s: %d documents, %d results", idle_timeout_s, documents, results)
            return False


def audit_outputs(
    kafka_config: dict[str, Any], topics: TopicNames, collection: Any, frames: list[Frame]
) -> tuple[AuditFigures, list[float]]:
    """The audit (no poison in these runs: every dead letter is spurious) and each committed result's
    capture-to-verdict latency in seconds (``inferred_at - captured_at``, the worker's own latency figure;
    a frame replayed after a fault keeps its capture time, so its wait counts)."""
    outputs = read_outputs(kafka_config, topics, collection)
    figures = audit(
        expected=(frame.identity for frame in frames),
        documents=outputs.documents,
        results=(result.identity for result in outputs.results),
        dead_letter_sources=outputs.dead_letter_sources,
        injected_bad=(),
    )
    decoded = outputs.results
    return figures, [max(0.0, (r.inferred_at - r.captured_at).total_seconds()) for r in decoded]
