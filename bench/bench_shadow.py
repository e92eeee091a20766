"""Benchmark shadow evaluation (issue 13, "Targets").

    nice -n 10 .venv/bin/python bench/bench_shadow.py [--model DIR] [--frames 600] [--seconds 30] [--json]

Kafka and MongoDB come from KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI or the running local stack; the model is
the shipped default unless --model names another. Frames are bench_workers' cached synthetic JPEGs.

1. drain vs replay: a backlog of ``--frames`` frames drained by a production worker (in this process), then
   the same records replayed by ``run_replay`` with the same model as the candidate. Both rates come from
   the documents with one formula: frames / (last ``inferred_at`` - first ``received_at``).
   Goal: ``replay_over_drain`` >= 0.9.
2. beside production: a production worker subprocess (``python -m workers``) gets frames at 50 % of the
   drain rate for ``--seconds``; production's capture -> inferred p99 (from its documents), then the same
   with a live shadow worker subprocess (``lineguard shadow run``, ``nice -n --shadow-nice``) beside it.
   Goal: ``p99_growth`` <= 1.20.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for entry in (str(REPO_ROOT), str(REPO_ROOT / "bench")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench_workers import FrameFactory, cached_frames, producer, publish_backlog, say  # noqa: E402

from infra.kafka_topics import delete_topics, ensure_topics  # noqa: E402
from infra.settings import MongoSettings  # noqa: E402
from lineguard.stack.endpoints import resolve_endpoints  # noqa: E402
from schemas.topics import TopicNames  # noqa: E402
from vision.shadow_stats import percentiles  # noqa: E402

WIDTH, HEIGHT = 640, 512


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def rate_of(docs: list[dict[str, Any]]) -> float:
    first = min(_utc(d["received_at"]) for d in docs)
    last = max(_utc(d["inferred_at"]) for d in docs)
    return len(docs) / max(1e-9, (last - first).total_seconds())


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise SystemExit(f"timed out waiting for {what}")


def _settings(topics: TopicNames, model: Path, group: str) -> Any:
    from workers.settings import WorkerSettings

    return WorkerSettings(group_id=group, model=model, commit_interval_ms=200).with_topics(topics)


def drain_and_replay(
    config: dict[str, Any], db: Any, topics: TopicNames, model: Path, frames: int
) -> dict[str, Any]:
    from workers.pipeline import Worker
    from workers.shadow.config import SHADOW_COLLECTION, shadow_group, shadow_settings
    from workers.shadow.replay import RangeRequest
    from workers.shadow.run import ShadowTarget, run_replay

    factory = FrameFactory(cached_frames(100, WIDTH, HEIGHT, 85), WIDTH, HEIGHT)
    publish_backlog(config, topics.frames, factory, frames, None)
    endpoints = resolve_endpoints()
    mongo = MongoSettings(database=db.name)
    production = _settings(topics, model, f"bench-prod-{uuid.uuid4().hex[:6]}")
    worker = Worker(production, endpoints=endpoints, mongo=mongo)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    _wait(lambda: db["inspections"].count_documents({}) >= frames, 900, "the drain")
    worker.stop()
    thread.join(60)
    drained = rate_of(list(db["inspections"].find({}, {"received_at": 1, "inferred_at": 1})))
    say(f"drain: {drained:.1f} frames/s")
    shadow = shadow_settings(production, model, shadow_group("bench", "replay", replay=True))
    started = time.monotonic()
    outcome = run_replay(
        shadow, ShadowTarget(replay=RangeRequest(start_offset=0)), endpoints=endpoints, mongo=mongo
    )
    wall = time.monotonic() - started
    replayed = rate_of(list(db[SHADOW_COLLECTION].find({}, {"received_at": 1, "inferred_at": 1})))
    say(f"replay: {replayed:.1f} frames/s ({outcome.results} results, {wall:.1f} s with start-up)")
    return {
        "frames": frames,
        "drain_fps": round(drained, 1),
        "replay_fps": round(replayed, 1),
        "replay_over_drain": round(replayed / drained, 3),
        "replay_wall_s": round(wall, 1),
        "replay_results": outcome.results,
    }


def _env(topics: TopicNames, db_name: str, model: Path, group: str, port: int) -> dict[str, str]:
    endpoints = resolve_endpoints()
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "MONGODB_URI": endpoints.mongodb_uri,
        "LINEGUARD_MONGODB_DATABASE": db_name,
        "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
        "LINEGUARD_WORKER_RESULTS_TOPIC": topics.results,
        "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": topics.defect_events,
        "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": topics.dead_letters,
        "LINEGUARD_WORKER_GROUP_ID": group,
        "LINEGUARD_WORKER_MODEL": str(model),
        "LINEGUARD_WORKER_AUTO_OFFSET_RESET": "latest",
        "LINEGUARD_WORKER_METRICS_PORT": str(port),
        "LINEGUARD_WORKER_METRICS_HOST": "127.0.0.1",
        "LINEGUARD_LOG_LEVEL": "WARNING",
    }


def paced(config: dict[str, Any], topic: str, factory: FrameFactory, rate: float, seconds: float) -> int:
    sender = producer(config)
    sender.list_topics(topic, timeout=30)
    first = factory.next()[1]  # frame numbers increase: the phase's documents are those from here on
    period, next_at = 1.0 / rate, time.monotonic()
    for _ in range(int(rate * seconds)):
        while (delay := next_at - time.monotonic()) > 0:
            sender.poll(delay)
        next_at += period
        camera, _number, _labels, value = factory.next()
        sender.produce(topic, key=camera.encode(), value=value)
        sender.poll(0)
    sender.flush(60)
    return first


def production_p99(db: Any, first: int, expected: int) -> dict[str, Any]:
    query = {"frame_number": {"$gt": first}}
    _wait(lambda: db["inspections"].count_documents(query) >= expected, 300, "production documents")
    docs = list(db["inspections"].find(query, {"captured_at": 1, "inferred_at": 1}))
    ms = [(_utc(d["inferred_at"]) - _utc(d["captured_at"])).total_seconds() * 1000 for d in docs]
    return percentiles(ms)


def beside(
    config: dict[str, Any],
    db: Any,
    topics: TopicNames,
    model: Path,
    rate: float,
    seconds: float,
    nice: int,
    sample_every: int,
) -> dict[str, Any]:
    from vision.registry import DirectoryRegistry
    from workers.shadow.config import SHADOW_COLLECTION

    factory = FrameFactory(cached_frames(100, WIDTH, HEIGHT, 85), WIDTH, HEIGHT)
    env = _env(topics, db.name, model, f"bench-prod-{uuid.uuid4().hex[:6]}", 0)
    prod = subprocess.Popen([sys.executable, "-m", "workers"], env=env, cwd=REPO_ROOT)
    shadow: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(15)  # start-up and partition assignment
        paced(config, topics.frames, factory, 5, 2)  # warm-up
        alone_first = paced(config, topics.frames, factory, rate, seconds)
        alone = production_p99(db, alone_first, int(rate * seconds))
        say(f"production alone at {rate:.1f} frames/s: {alone}")
        registry = DirectoryRegistry(Path(tempfile.mkdtemp(prefix="bench-shadow-registry-")))
        published = registry.publish(model)
        command = ["nice", "-n", str(nice), sys.executable, "-m", "lineguard.cli", "shadow", "run"]
        command += [
            "--model",
            published.name,
            "--version",
            published.version,
            "--registry",
            str(registry.root),
        ]
        command += ["--sample-every", str(sample_every), "--decode-threads", "1", "--inference-threads", "1"]
        shadow_env = {**env, "LINEGUARD_WORKER_GROUP_ID": ""}
        shadow = subprocess.Popen(command, env=shadow_env, cwd=REPO_ROOT)
        time.sleep(15)
        paced(config, topics.frames, factory, 5, 2)
        _wait(lambda: db[SHADOW_COLLECTION].count_documents({}) > 0, 120, "the shadow worker")
        with_first = paced(config, topics.frames, factory, rate, seconds)
        together = production_p99(db, with_first, int(rate * seconds))
        say(f"production beside a shadow worker: {together}")
    finally:
        for process in (shadow, prod):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(60)
    growth = (together["p99"] or 0) / max(1e-9, alone["p99"] or 0)
    return {
        "rate_fps": round(rate, 1),
        "sample_every": sample_every,
        "alone_ms": alone,
        "with_shadow_ms": together,
        "p99_growth": round(growth, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--load", type=float, default=0.5)
    parser.add_argument("--shadow-nice", type=int, default=10)
    parser.add_argument("--sample-every", type=int, default=1, help="the shadow inspects one frame in N")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from pymongo import MongoClient

    from workers.serving import default_model_path

    model = (args.model or default_model_path()).resolve()
    endpoints = resolve_endpoints()
    config = endpoints.kafka_config()
    client: Any = MongoClient(endpoints.mongodb_uri)
    figures: dict[str, Any] = {"model": str(model), "cores": os.cpu_count()}
    names = []
    try:
        for phase in ("replay", "beside"):
            topics = TopicNames.with_prefix(f"bench-shadow-{phase}-{uuid.uuid4().hex[:8]}")
            names.append(topics)
            ensure_topics(
                config,
                [topics.frames, topics.results, topics.defect_events, topics.dead_letters],
                partitions=3,
            )
            db = client[f"bench_shadow_{uuid.uuid4().hex[:8]}"]
            try:
                if phase == "replay":
                    figures["replay"] = drain_and_replay(config, db, topics, model, args.frames)
                else:
                    rate = args.load * figures["replay"]["drain_fps"]
                    figures["beside"] = beside(
                        config, db, topics, model, rate, args.seconds, args.shadow_nice, args.sample_every
                    )
            finally:
                client.drop_database(db.name)
    finally:
        from workers.shadow.config import shadow_topics

        for topics in names:
            shadow = shadow_topics(topics.frames)
            delete_topics(
                config,
                [
                    topics.frames,
                    topics.results,
                    topics.defect_events,
                    topics.dead_letters,
                    shadow.results,
                    shadow.defect_events,
                    shadow.dead_letters,
                ],
            )
        client.close()
    print(json.dumps(figures, indent=2) if args.json else figures)


if __name__ == "__main__":
    main()
