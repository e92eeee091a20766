"""Rebalance storm (issue 18, item 4): workers join and leave the group every few seconds while frames flow,
then the same audit as the fault campaigns (:mod:`chaos.audit`): 0 lost, 0 duplicate documents and, under
exactly-once, 0 duplicate results.

Slot 0 stays up (a plant never scales to zero); every ``period`` seconds (seeded, ``min_period_s`` to
``max_period_s``) one of the other slots flips: a running worker leaves (SIGTERM, a clean leave, or SIGKILL,
a crash the session timeout has to notice, alternately) and a stopped one joins. Each flip is a rebalance of
the whole group. Runs on the shared stack (``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI``, else the local
one) under topics and a database of its own.

Besides the audit it reports the capture -> verdict latency of every committed result (p50/p99/max:
``inferred_at - captured_at``, each frame stamped when it is sent, so a frame waiting for its partition's
new owner counts its wait) and the time the group spent rebalancing (:mod:`chaos.group_state`: the group's
state sampled from the coordinator every 0.5 s).

    nice -n 10 .venv/bin/python -m chaos.rebalance_storm --minutes 10 --fps 10 --workers 3 --exactly-once
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chaos.audit import AuditFigures, percentile
from chaos.frames import good_frames
from chaos.group_state import GroupStateSampler, RebalanceFigures
from chaos.live_run import audit_outputs
from chaos.model import resolve_model
from chaos.producer import ProducerThread
from chaos.worker_process import WorkerOptions, WorkerProcess
from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import Endpoints, resolve_endpoints
from schemas.topics import TopicNames

log = logging.getLogger(__name__)
COLLECTION = "inspections"


@dataclass(frozen=True, slots=True)
class StormConfig:
    exactly_once: bool
    frames: int = 600
    fps: float = 10.0
    workers: int = 3
    min_period_s: float = 5.0
    max_period_s: float = 10.0
    seed: int = 7
    idle_timeout_s: float = 120.0


@dataclass(slots=True)
class StormReport:
    mode: str
    figures: AuditFigures
    joins: int
    leaves_sigterm: int
    leaves_sigkill: int
    unplanned_exits: int
    seconds: float
    latency_s: dict[str, float | None]  # p50 / p99 / max capture -> verdict over the committed results
    rebalancing: RebalanceFigures

    @property
    def passed(self) -> bool:
        f = self.figures
        duplicates = f.duplicate_results if self.mode == "exactly-once" else 0
        return f.lost == 0 and f.duplicate_documents == 0 and duplicates == 0 and self.unplanned_exits == 0


def run_storm(config: StormConfig, endpoints: Endpoints, work_dir: Path, model: Path) -> StormReport:
    from pymongo import MongoClient

    started = time.monotonic()
    mode = "exactly-once" if config.exactly_once else "at-least-once"
    topics = TopicNames.with_prefix(f"storm.{uuid.uuid4().hex[:8]}")
    names = [topics.frames, topics.results, topics.defect_events, topics.dead_letters]
    database = f"storm_{uuid.uuid4().hex[:8]}"
    kafka_config = endpoints.kafka_config()
    ensure_topics(kafka_config, names, partitions=6)
    client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=10_000)
    frames = list(good_frames(0, config.frames, cameras=6, seed=config.seed))
    group_id = f"storm-{database}"
    producer = ProducerThread(
        kafka_config=kafka_config,
        topic=topics.frames,
        frames=frames,
        fps=config.fps,
        spool_dir=work_dir / "spool",
        spool_max_bytes=64 * 1024 * 1024,
        bad_cases={},
        stamp_on_send=True,
    )
    workers = [
        WorkerProcess(
            WorkerOptions(
                topics=topics,
                group_id=group_id,
                model=model,
                mongo_database=database,
                worker_id=f"storm-worker-{slot}",
                exactly_once=config.exactly_once,
            ),
            endpoints,
            work_dir / f"worker-{slot}.log",
        )
        for slot in range(config.workers)
    ]
    rng = random.Random(config.seed)
    counts = {"joins": 0, "sigterm": 0, "sigkill": 0}
    sampler = GroupStateSampler(kafka_config, group_id)
    rebalancing: RebalanceFigures | None = None
    try:
        sampler.start()
        for worker in workers:
            worker.start()
        producer.start()
        next_flip = time.monotonic() + rng.uniform(config.min_period_s, config.max_period_s)
        collection = client[database][COLLECTION]
        last_seen, last_move = -1, time.monotonic()
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            if producer.alive and now >= next_flip and config.workers > 1:
                _flip(workers[rng.randrange(1, config.workers)], counts)
                next_flip = now + rng.uniform(config.min_period_s, config.max_period_s)
            for worker in workers:
                if worker.check() is not None:  # an exit nobody ordered: counted, restarted
                    worker.start()
            if producer.alive:
                continue
            for worker in workers:  # the storm is over: everyone back for the drain
                if not worker.running():
                    worker.start()
                    counts["joins"] += 1
            count = collection.estimated_document_count()
            if count >= config.frames:
                break
            if count != last_seen:
                last_seen, last_move = count, now
            elif now - last_move > config.idle_timeout_s:
                log.error(
                    "no progress for %.0f s at %d of %d documents", now - last_move, count, config.frames
                )
                break
        rebalancing = sampler.close()  # before the final leaves: they are not the storm's
        for worker in workers:
            worker.terminate()
        figures, latencies = audit_outputs(kafka_config, topics, client[database][COLLECTION], frames)
    finally:
        if rebalancing is None:
            sampler.close()
        for worker in workers:
            if worker.running():
                worker.kill()
        client.drop_database(database)
        client.close()
        delete_topics(kafka_config, names)
    assert rebalancing is not None  # set on the way out of the try, or it raised
    return StormReport(
        mode=mode,
        figures=figures,
        joins=counts["joins"],
        leaves_sigterm=counts["sigterm"],
        leaves_sigkill=counts["sigkill"],
        unplanned_exits=sum(len(worker.unplanned_exits) for worker in workers),
        seconds=time.monotonic() - started,
        latency_s={
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies, default=None),
        },
        rebalancing=rebalancing,
    )


def _flip(worker: WorkerProcess, counts: dict[str, int]) -> None:
    if not worker.running():
        worker.start()
        counts["joins"] += 1
    elif (counts["sigterm"] + counts["sigkill"]) % 2 == 0:
        threading.Thread(target=worker.terminate, daemon=True).start()  # a drain must not stop the storm
        counts["sigterm"] += 1
    else:
        worker.kill()
        counts["sigkill"] += 1


def report_json(report: StormReport) -> dict[str, Any]:
    """The report as printed: audit, counts, latency (rounded) and rebalancing figures (pure)."""
    figures = asdict(report)
    figures.pop("rebalancing")
    figures["latency_s"] = {k: None if v is None else round(v, 3) for k, v in report.latency_s.items()}
    return {**figures, **report.rebalancing.to_json(), "passed": report.passed}


def main() -> None:
    parser = argparse.ArgumentParser(description="Workers join and leave every few seconds; then the audit.")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument(
        "--minutes", type=float, default=None, help="storm length: --frames = fps x 60 x this"
    )
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--exactly-once", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    frames = args.frames if args.minutes is None else round(args.fps * 60 * args.minutes)
    config = StormConfig(args.exactly_once, frames, args.fps, args.workers, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="lineguard-storm-") as work:
        report = run_storm(config, resolve_endpoints(), Path(work), resolve_model(None))
    print(json.dumps(report_json(report)))
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
