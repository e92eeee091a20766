"""The fault thread of the chaos run: the worker pool it kills and restarts, and the faults themselves.

Each scheduled fault (:mod:`chaos.faults`) runs on a thread of its own at its time: SIGKILL a worker and
restart it, SIGKILL the broker and start it again, stop (SIGKILL) MongoDB for ``mongo_outage_s``, restart the
producer. Its :class:`~chaos.recovery.FaultRecord` says whether it was observed to happen and when it was
repaired.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from chaos.faults import FaultKind, FaultPlan, ScheduledFault
from chaos.producer import ProducerThread
from chaos.recovery import FaultRecord, port_refuses
from chaos.worker_process import WorkerProcess
from lineguard.stack.endpoints import Endpoints
from lineguard.stack.launcher import LocalStack
from lineguard.stack.mongodb import ping
from lineguard.stack.state import KAFKA, MONGODB, is_running

log = logging.getLogger(__name__)


class WorkerPool:
    """The worker processes, shared by the fault thread (kills) and the supervisor loop (unplanned exits)."""

    def __init__(self, processes: list[WorkerProcess]) -> None:
        self.processes = processes
        self.lock = threading.Lock()
        self._down: set[int] = set()  # killed by a fault, restart pending

    def supervise(self) -> None:
        with self.lock:
            for process in self.processes:
                code = process.check()
                if code is not None:
                    log.warning(
                        "worker %s exited on its own (code %s): restarting", process.options.worker_id, code
                    )
                    process.start()

    def kill_one(self, preferred: int) -> int | None:
        """SIGKILL the preferred worker, or another one if that one is down already; returns the slot."""
        with self.lock:
            slots = [preferred, *(s for s in range(len(self.processes)) if s != preferred)]
            for slot in slots:
                if slot not in self._down and self.processes[slot].running():
                    self.processes[slot].kill()
                    self._down.add(slot)
                    return slot
        return None

    def start(self, slot: int) -> None:
        with self.lock:
            self.processes[slot].start()
            self._down.discard(slot)

    def stop_all(self) -> list[int | None]:
        with self.lock:
            return [process.terminate(60.0) for process in self.processes]


def inject_faults(
    faults: list[ScheduledFault],
    start: float,
    stack: LocalStack,
    endpoints: Endpoints,
    workers: WorkerPool,
    producer: ProducerThread,
    plan: FaultPlan,
    records: list[FaultRecord],
) -> None:
    """Start each fault at its time, on a thread of its own: a broker restart that takes 30 s must not
    postpone the worker kills scheduled meanwhile (faults overlap in real life too)."""
    running: list[threading.Thread] = []
    for fault in faults:
        delay = start + fault.at_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        record = FaultRecord(fault.kind, time.monotonic())
        records.append(record)
        thread = threading.Thread(
            target=apply_fault,
            args=(fault, record, stack, endpoints, workers, producer, plan),
            name=f"chaos-{fault.kind}",
        )
        thread.start()
        running.append(thread)
    for thread in running:
        thread.join()


def apply_fault(
    fault: ScheduledFault,
    record: FaultRecord,
    stack: LocalStack,
    endpoints: Endpoints,
    workers: WorkerPool,
    producer: ProducerThread,
    plan: FaultPlan,
) -> None:
    try:
        if fault.kind is FaultKind.worker_kill:
            slot = workers.kill_one(fault.target)
            if slot is None:
                log.warning("worker kill skipped: every worker is already down (not observed)")
                return
            process = workers.processes[slot]
            record.worker_id = process.options.worker_id
            record.observed = not process.running()
            record.down_at = time.monotonic()
            time.sleep(fault.restart_after_s)
            workers.start(slot)
        elif fault.kind is FaultKind.broker_restart:
            address = stack.state().services[KAFKA].address
            record.observed = kill_service(stack, KAFKA) and port_refuses(address)
            record.down_at = time.monotonic()
            stack.up([KAFKA])
        elif fault.kind is FaultKind.mongo_outage:
            # SIGKILL, not a clean stop: whatever the server acknowledged must already be durable.
            if plan.mongo_sigkill:
                gone = kill_service(stack, MONGODB)
            else:
                stack.down([MONGODB])
                gone = True
            record.observed = gone and stops_answering(endpoints.mongodb_uri)
            record.down_at = time.monotonic()
            time.sleep(plan.mongo_outage_s)
            stack.up([MONGODB])
        else:
            before = producer.totals.restarts
            producer.request_restart()
            deadline = time.monotonic() + 60
            while producer.totals.restarts == before and producer.alive and time.monotonic() < deadline:
                time.sleep(0.1)
            record.observed = producer.totals.restarts > before
    except Exception:  # a fault that could not be injected or repaired is reported, not hidden
        log.exception("fault %s failed", fault.kind.value)
        return
    record.repaired = time.monotonic()
    log.info(
        "fault %s done in %.1f s (observed: %s)",
        fault.kind.value,
        record.repaired - record.started,
        record.observed,
    )


def stops_answering(mongodb_uri: str, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while ping(mongodb_uri, 1.0):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def kill_service(stack: LocalStack, name: str) -> bool:
    """SIGKILL a stack service; True once its process is confirmed gone."""
    service = stack.state().services[name]
    assert service.pid is not None
    os.kill(service.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while is_running(service) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not is_running(service)
