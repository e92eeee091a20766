"""What each fault did and how the faulted side came back: observation, progress clocks, recovery figures.

A fault counts only when it was *observed* to happen: the worker process gone, the broker's process gone and
its port refusing connections, MongoDB's process gone and the server not answering ``ping``. Recovery is
measured from the faulted side's own progress, never from whoever happens to be healthy:

* a worker kill: the first result written by *that* worker (its worker id) after it was killed (so by its
  restarted process), not the first result of the surviving worker, which never stopped;
* a broker restart: the first result read from the broker after its death was confirmed (a dead broker
  serves nothing, so that read is its recovery, even when it lands before its health check passed);
* a MongoDB outage: the first new document after its death was confirmed (a result may be written before
  its document is, so results alone would report a recovery MongoDB had not made yet).

A producer restart does not stop inspection; it is counted (observed) and has no recovery figure.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from chaos.faults import FaultKind
from chaos.kafka_io import TopicReader
from schemas.records import InspectionResult
from schemas.serde import AvroRecordDeserializer


@dataclass(slots=True)
class FaultRecord:
    kind: FaultKind
    started: float  # time.monotonic()
    repaired: float | None = None  # restarted and healthy again
    observed: bool = False  # the fault really happened (see the module docstring)
    down_at: float | None = None  # when it was confirmed down: progress after this is the recovery
    worker_id: str | None = None  # a worker kill: whose


class ProgressClock:
    """Arrival times of results per worker (results topic, read_committed) and of new MongoDB documents,
    each on a thread of its own."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, collection: Any) -> None:
        self._reader = TopicReader(kafka_config, topic)
        self._decode = AvroRecordDeserializer(InspectionResult)
        self._collection = collection
        self.results: list[tuple[float, str]] = []  # (arrival, worker id)
        self.documents: list[float] = []  # times the document count was seen to grow
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read_results, name="chaos-results", daemon=True),
            threading.Thread(target=self._count_documents, name="chaos-documents", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_results(self) -> None:
        while not self._stop.is_set():
            if self._reader.poll(0.2):
                now = time.monotonic()
                for record in self._reader.records[len(self.results) :]:
                    result = self._decode(record.payload)
                    self.results.append((now, "" if result is None else result.worker_id))

    def _count_documents(self) -> None:
        last = 0
        while not self._stop.wait(0.25):
            try:
                count = self._collection.estimated_document_count()
            except Exception:  # MongoDB is down during its outage: no progress to record
                continue
            if count > last:
                last = count
                self.documents.append(time.monotonic())

    def first_result_after(self, moment: float, worker_id: str | None = None) -> float | None:
        return next(
            (t for t, who in list(self.results) if t > moment and (worker_id is None or who == worker_id)),
            None,
        )

    def first_document_after(self, moment: float) -> float | None:
        return next((t for t in list(self.documents) if t > moment), None)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._reader.close()


@dataclass(frozen=True, slots=True)
class Recovery:
    recovery_s: dict[str, list[float]]  # from each fault's start to the faulted side's first progress
    after_repair_s: dict[str, list[float]]  # from its repair (process restarted, server answering)
    unrecovered: int  # faults with no repair, or no progress of the faulted side after it
    unobserved: int  # faults that were scheduled but not seen to happen


def measure(records: list[FaultRecord], clock: ProgressClock) -> Recovery:
    recovery: dict[str, list[float]] = {}
    after_repair: dict[str, list[float]] = {}
    unrecovered = unobserved = 0
    for record in records:
        if not record.observed:
            unobserved += 1
        if record.kind is FaultKind.producer_restart:
            continue  # inspection never stopped: nothing to recover
        if record.repaired is None:
            unrecovered += 1
            continue
        since = record.repaired if record.down_at is None else record.down_at
        if record.kind is FaultKind.worker_kill:
            first = clock.first_result_after(since, record.worker_id)
        elif record.kind is FaultKind.mongo_outage:
            first = clock.first_document_after(since)
        else:
            first = clock.first_result_after(since)
        if first is None:
            unrecovered += 1
            continue
        recovery.setdefault(record.kind.value, []).append(first - record.started)
        # Progress can show up a moment before the repair step returns (a broker serves before its health
        # check passed): that is no time at all after the repair.
        after_repair.setdefault(record.kind.value, []).append(max(0.0, first - record.repaired))
    return Recovery(recovery, after_repair, unrecovered, unobserved)


def port_refuses(address: str, within_s: float = 10.0) -> bool:
    """True once nothing accepts TCP connections at ``host:port`` (a dead server, not a slow one). Polled:
    a SIGKILLed process leaves /proc looking dead a moment before the kernel has closed its sockets."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + within_s
    while True:
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=1.0):
                pass
        except OSError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
