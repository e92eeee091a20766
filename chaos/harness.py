"""The fault run: a stack of its own, two workers, a producer, seeded faults, then an audit from outside.

1. A private local stack (Kafka + MongoDB-protocol server) in ``<work dir>/stack``, so killing its broker
   disturbs nobody else's; the jars and binaries come from the shared cache.
2. Two worker subprocesses in one group (stable worker ids: with ``--exactly-once`` a restarted worker
   fences its killed predecessor) and a producer thread publishing ``frames`` known frames at ``fps``, with
   ``bad_inputs`` poison records mixed in.
3. A fault thread follows the seeded schedule (:mod:`chaos.faults`): SIGKILL a worker and restart it, SIGKILL
   the broker and start it again, stop MongoDB for ``mongo_outage_s`` and start it again, restart the
   producer. Workers that exit on their own are restarted too, and counted (``worker_unplanned_exits``).
4. When every frame has a document (or nothing moves for ``idle_timeout_s``), workers get SIGTERM and the
   outputs are audited (:mod:`chaos.audit`).

Recovery (:mod:`chaos.recovery`): ``recovery_s`` runs from a fault's start to the faulted side's own first
progress after its repair (the killed worker's own first result; the broker's first accepted result; the
first new MongoDB document), ``recovery_after_repair_s`` from the repair. A fault counts only when it was
observed to happen (process gone, port refusing, MongoDB not answering). MongoDB is SIGKILLed, not stopped,
so a server that acknowledged writes it had not made durable would lose them, and the audit would see it.

``passed`` needs all of: nothing lost, no duplicate document, no duplicate result or dead letter under
exactly-once, dead letters exactly for the poison, no unexpected result, no unplanned worker exit, every
planned fault observed, every fault recovered, each within ``plan.recovery_bound_s`` of its repair.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.audit import AuditFigures, audit
from chaos.corpus import BadInputCorpus, ClaimCheckTarget, CorpusLimits
from chaos.fault_injection import WorkerPool, inject_faults
from chaos.faults import FaultKind, FaultPlan, planned_duration_s, schedule
from chaos.frames import good_frames
from chaos.outputs import read_outputs
from chaos.producer import ProducerThread
from chaos.recovery import FaultRecord, ProgressClock, measure
from chaos.report import HarnessReport
from chaos.worker_process import WorkerOptions, WorkerProcess
from infra.kafka_topics import ensure_topics
from infra.settings import default_cache_dir
from lineguard.stack.endpoints import Endpoints, resolve_endpoints
from lineguard.stack.launcher import LocalStack
from lineguard.stack.settings import StackSettings
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

DATABASE = "chaos"
COLLECTION = "inspections"
WORKER_MAX_MESSAGE_BYTES = 256 * 1024  # small bounds keep the poison records (and their dead letters) small
WORKER_MAX_IMAGE_PIXELS = 4_000_000


@dataclass(frozen=True, slots=True)
class HarnessConfig:
    exactly_once: bool
    frames: int
    model: Path
    work_dir: Path
    plan: FaultPlan = field(default_factory=FaultPlan)
    seed: int = 7
    fps: float = 15.0
    bad_inputs: int = 30
    workers: int = 2
    cameras: int = 6
    idle_timeout_s: float = 180.0
    spool_max_bytes: int = 256 * 1024 * 1024


def run_harness(config: HarnessConfig) -> HarnessReport:
    started = time.monotonic()
    config.work_dir.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(StackSettings(cache_dir=default_cache_dir(), state_dir=config.work_dir / "stack"))
    stack.up()
    try:
        endpoints = resolve_endpoints(env={}, state_dir=stack.state_dir)
        return _run(config, stack, endpoints, started)
    finally:
        stack.down(purge=True)


def _run(config: HarnessConfig, stack: LocalStack, endpoints: Endpoints, started: float) -> HarnessReport:
    from pymongo import MongoClient

    from infra.claimcheck import GridFSClaimCheckStore

    mode = "exactly-once" if config.exactly_once else "at-least-once"
    topics = TopicNames.with_prefix("chaos")
    kafka_config = endpoints.kafka_config()
    ensure_topics(kafka_config, [topics.frames, topics.results, topics.defect_events, topics.dead_letters])
    client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=10_000)
    target_image = _target_image()
    GridFSClaimCheckStore(client, DATABASE).put(target_image)
    corpus = BadInputCorpus(
        seed=config.seed,
        limits=CorpusLimits(WORKER_MAX_MESSAGE_BYTES, WORKER_MAX_IMAGE_PIXELS),
        target=ClaimCheckTarget(DATABASE, "frames", target_image),
    )
    frames = list(good_frames(0, config.frames, cameras=config.cameras, seed=config.seed))
    rng = random.Random(config.seed)
    bad_at = sorted(rng.sample(range(config.frames), min(config.bad_inputs, config.frames)))
    producer = ProducerThread(
        kafka_config=kafka_config,
        topic=topics.frames,
        frames=frames,
        fps=config.fps,
        spool_dir=config.work_dir / "spool",
        spool_max_bytes=config.spool_max_bytes,
        bad_cases={index: corpus.case(number) for number, index in enumerate(bad_at)},
    )
    workers = WorkerPool(
        [
            WorkerProcess(
                WorkerOptions(
                    topics=topics,
                    group_id="chaos-workers",
                    model=config.model,
                    mongo_database=DATABASE,
                    worker_id=f"chaos-worker-{slot}",
                    exactly_once=config.exactly_once,
                    max_message_bytes=WORKER_MAX_MESSAGE_BYTES,
                    max_image_pixels=WORKER_MAX_IMAGE_PIXELS,
                ),
                endpoints,
                config.work_dir / f"worker-{slot}.log",
            )
            for slot in range(config.workers)
        ]
    )
    duration = planned_duration_s(config.frames, config.fps, config.plan)
    if duration > config.frames / config.fps:  # stretch production over the schedule
        producer.fps = config.frames / duration
    faults = schedule(config.plan, duration, config.workers, config.seed)
    log.info("%s run: %d frames over %.0f s, %d faults", mode, config.frames, duration, len(faults))
    records: list[FaultRecord] = []
    collection = client[DATABASE][COLLECTION]
    clock = ProgressClock(kafka_config, topics.results, collection)
    try:
        for slot in range(config.workers):
            workers.start(slot)
        producer.start()
        injector = threading.Thread(
            target=inject_faults,
            args=(faults, time.monotonic(), stack, endpoints, workers, producer, config.plan, records),
            name="chaos-faults",
            daemon=True,
        )
        injector.start()
        _supervise_until_done(config, workers, producer, injector, collection, clock)
        exit_codes = workers.stop_all()
        log.info("workers stopped with exit codes %s", exit_codes)
    finally:
        clock.close()
        with workers.lock:
            for process in workers.processes:
                if process.running():
                    process.kill()
    figures = _audit(kafka_config, topics, client, frames, producer)
    client.close()
    recovery = measure(records, clock)

    def confirmed(kind: FaultKind) -> int:
        return sum(1 for r in records if r.kind is kind and r.observed and r.repaired is not None)

    return HarnessReport(
        mode=mode,
        figures=figures,
        worker_kills=sum(1 for r in records if r.kind is FaultKind.worker_kill and r.observed),
        broker_restarts=confirmed(FaultKind.broker_restart),
        mongo_outages=confirmed(FaultKind.mongo_outage),
        mongo_outage_s=sum(
            (r.repaired or r.started) - r.started for r in records if r.kind is FaultKind.mongo_outage
        ),
        producer_restarts=producer.totals.restarts,
        worker_unplanned_exits=sum(len(p.unplanned_exits) for p in workers.processes),
        recovery_s=recovery.recovery_s,
        recovery_after_repair_s=recovery.after_repair_s,
        unrecovered_faults=recovery.unrecovered,
        unobserved_faults=recovery.unobserved,
        producer={**asdict(producer.totals), "bad_failed": producer.bad_failed},
        bad_inputs_injected=len(producer.bad_landed),
        seconds=time.monotonic() - started,
        plan=config.plan,
    )


def _target_image() -> bytes:
    import cv2
    import numpy as np

    return bytes(cv2.imencode(".jpg", np.full((128, 128, 3), 90, np.uint8))[1].tobytes())


def _supervise_until_done(
    config: HarnessConfig,
    workers: WorkerPool,
    producer: ProducerThread,
    injector: threading.Thread,
    collection: Any,
    clock: ProgressClock,
) -> None:
    """Restart workers that exit on their own until production and faults are over and every frame has a
    document and a committed result, or nothing moved for ``idle_timeout_s``.

    Both, because either can come first: exactly once writes a batch's documents *before* the transaction
    of its results (a transaction still being rewritten after a broker restart has every document already),
    at least once writes them after the results. Stopping on the documents alone stopped the workers in the
    middle of such a rewrite and counted its frames lost.
    """
    last_progress_seen, last_progress = (-1, -1), time.monotonic()
    while True:
        workers.supervise()
        time.sleep(0.5)
        if producer.alive or injector.is_alive():
            last_progress = time.monotonic()
            continue
        try:
            count = collection.estimated_document_count()
        except Exception:  # MongoDB may still be coming back
            continue
        results = len(clock.results)  # committed (read_committed) results, duplicates included
        if count >= config.frames and results >= config.frames:
            return
        if (count, results) != last_progress_seen:
            last_progress_seen, last_progress = (count, results), time.monotonic()
        elif time.monotonic() - last_progress > config.idle_timeout_s:
            log.error(
                "no progress for %.0f s with %d of %d documents, %d committed results",
                config.idle_timeout_s,
                count,
                config.frames,
                results,
            )
            return


def _audit(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    client: Any,
    frames: list[Any],
    producer: ProducerThread,
) -> AuditFigures:
    outputs = read_outputs(kafka_config, topics, client[DATABASE][COLLECTION])
    return audit(
        expected=(frame.identity for frame in frames),
        documents=outputs.documents,
        results=(result.identity for result in outputs.results),
        dead_letter_sources=outputs.dead_letter_sources,
        injected_bad=((landed.partition, landed.offset) for landed in producer.bad_landed),
    )
