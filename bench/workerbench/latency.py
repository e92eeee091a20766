"""Phases 2 and 4, pipeline and latency: a backlog drained by the worker, then frames paced at fractions of
``pipeline_fps`` (optionally with a capture -> verdict deadline), latency split by the result's timestamps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.demo.tally import DemoTally
from lineguard.demo.watch import OutputWatcher
from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from workerbench.common import LATENCY_LOAD, Sizes, load_1m, percentages, say
from workerbench.frames import FrameFactory, producer, publish_backlog
from workerbench.worker_process import BenchWorker, CpuShares, Deployment, wait_settled, warm_up_topic


class DeadlineTally(DemoTally):
    """A tally that also tells inspected results from fail-safe ones (``deadline_missed``)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[tuple[bool, float]] = []  # (deadline missed, capture -> result seconds)

    def add_result(self, result: Any, latency_s: float) -> bool:
        counted = super().add_result(result, latency_s)
        if counted:
            self.outcomes.append((bool(result.deadline_missed), latency_s))
        return counted

    def deadline_figures(self) -> dict[str, Any]:
        inspected = sorted(latency for missed, latency in self.outcomes if not missed)
        missed = sum(1 for flag, _ in self.outcomes if flag)

        def at(q: float) -> float | None:
            return float(np.percentile(inspected, q) * 1000) if inspected else None

        return {
            "inspected": {"frames": len(inspected), "p50": at(50), "p99": at(99), "max": at(100)},
            "fail_safe_share": missed / len(self.outcomes) if self.outcomes else None,
        }


def pipeline_and_latency(
    endpoints: Endpoints,
    model_path: Path,
    factory: FrameFactory,
    sizes: Sizes,
    log_dir: Path,
    deadline_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    deployment = Deployment.create(endpoints, "pipeline")
    config, topics = deployment.kafka_config, deployment.topics
    worker: BenchWorker | None = None
    try:
        tally = DemoTally()
        watcher = OutputWatcher(config, topics, tally)
        watcher.start()
        megabytes = publish_backlog(config, topics.frames, factory, sizes.pipeline_frames, tally)
        say(
            f"  backlog of {sizes.pipeline_frames} frames ({megabytes:.0f} MB) published; starting the worker"
        )
        worker = BenchWorker(endpoints, topics, deployment.database, model_path, log_dir)
        load_before = load_1m()
        used = wait_settled(tally, sizes.pipeline_frames, 1_800, worker, endpoints)
        pipeline_fps = tally.throughput_fps()
        pipeline_load = (load_before + load_1m()) / 2
        pipeline_mongo = _count_documents(endpoints, deployment.database)
        watcher.stop()
        say(f"  pipeline: {pipeline_fps:.1f} frames/s; now latency at {percentages(sizes.loads)} of it")
        if deadline_env:  # the drained rate is measured without a deadline (the backlog would be all late)
            worker.stop()
            worker = BenchWorker(
                endpoints, topics, deployment.database, model_path, log_dir, worker.group, deadline_env
            )
            worker.wait_ready(config, topics.frames)

        by_load: dict[str, dict[str, Any]] = {}
        for fraction in sizes.loads:
            rate = fraction * pipeline_fps
            tally = DeadlineTally()
            watcher = OutputWatcher(config, topics, tally)
            watcher.start()
            shares = CpuShares(endpoints, worker)
            sent = paced_publish(config, topics, factory, rate, sizes.latency_s, tally)
            wait_settled(tally, sent, 300, worker, endpoints)
            latency = tally.latency_ms()
            parts = tally.latency_segments_ms()
            watcher.stop()
            by_load[f"{fraction:.2f}"] = {
                "rate_fps": rate,
                "frames": sent,
                **latency,
                "segments": parts,
                "cpu_cores": shares.cores(),
                **(tally.deadline_figures() if deadline_env else {}),
            }
            segments = ", ".join(f"{name} {part['p99']:.0f}" for name, part in parts.items())
            say(
                f"  at {fraction:.0%} ({rate:.0f} frames/s): p50 {latency['p50']:.0f} ms, "
                f"p99 {latency['p99']:.0f} ms (p99 of {segments})"
            )
        headline = by_load.get(f"{LATENCY_LOAD:.2f}") or by_load[f"{sizes.loads[-1]:.2f}"]
        exit_code, stop_s = worker.stop()
        return {
            "pipeline_fps": pipeline_fps,
            "pipeline_cpu_ms_per_frame": used.worker_cpu_s * 1000 / used.frames if used else None,
            "load_during_pipeline": pipeline_load,
            "pipeline_cpu_cores": used.cores if used else None,
            "pipeline_frames": sizes.pipeline_frames,
            "pipeline_mongodb_documents": pipeline_mongo,
            "latency_rate_fps": headline["rate_fps"],
            "latency_frames": headline["frames"],
            "p50_ms": headline["p50"],
            "p90_ms": headline["p90"],
            "p99_ms": headline["p99"],
            "latency_by_load": by_load,
            "deadline_ms": float(deadline_env["LINEGUARD_WORKER_DEADLINE_MS"]) if deadline_env else None,
            "inspected_p99_ms": headline.get("inspected", {}).get("p99"),
            "fail_safe_share": headline.get("fail_safe_share"),
            "worker_exit_code": exit_code,
            "worker_stop_s": stop_s,
        }
    finally:
        if worker is not None:
            worker.stop()
        deployment.remove()


def paced_publish(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    factory: FrameFactory,
    rate: float,
    seconds: float,
    tally: DemoTally,
) -> int:
    """Publish at ``rate`` frames/s for ``seconds``, each frame captured just before it is sent.

    The producer is warmed up first (connection, producer id, metadata), like a camera's long-lived one:
    a fresh producer holds its first frames for ~0.5 s, which was most of the measured p99."""
    sender = producer(kafka_config)
    sender.produce(warm_up_topic(topics), value=b"warm-up")
    if sender.flush(30) != 0:
        raise RuntimeError("the latency phase's producer could not reach Kafka")
    sender.list_topics(topics.frames, timeout=30)
    topic = topics.frames
    period = 1.0 / rate
    count = max(1, int(rate * seconds))
    next_at = time.monotonic()
    for _ in range(count):
        # poll() returns early when it serves a delivery report: keep waiting until the frame's slot.
        while (delay := next_at - time.monotonic()) > 0:
            sender.poll(delay)
        next_at += period
        camera, number, labels, value = factory.next()
        tally.expect((camera, number), labels)
        sender.produce(topic, key=camera.encode(), value=value)
        sender.poll(0)
    sender.flush(60)
    return count


def _count_documents(endpoints: Endpoints, database: str) -> int:
    from pymongo import MongoClient

    client: Any = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
    try:
        return int(client[database]["inspections"].count_documents({}))
    finally:
        client.close()
