"""Scale-out of the worker consumer group on one machine (issue 14, "Scale-out evidence").

    nice -n 10 .venv/bin/python bench/bench_scaleout.py [--backlog 2400] [--json]

Kafka and MongoDB come from KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI or the running local stack; the model is
the shipped default. Frames: bench_workers' cached synthetic JPEGs (``--size``, default 640x512) from 16
cameras, so the keys cover all 8 partitions. Workers are ``python -m workers`` subprocesses run under
``nice -n 10`` with one decode and one inference thread each (so N workers ask for about N cores).
Every phase has its own topics (8 partitions), group and database, deleted afterwards.

1. throughput (``workers_N``, N = 1, 2, 4): a backlog of ``--backlog`` frames published, then N workers
   started; the rate of results (their Kafka timestamps) from the moment the last of the N workers gave its
   first result to the 90th percentile (start-up and the tail left out). ``cores``: CPU the workers got
   in that window (/proc, sampled every 0.25 s); ``cpu_ms_per_frame``: their CPU per result.
2. scale-up (``scale_A_to_B``, 1 -> 2 and 2 -> 4): A workers drain a backlog twice as large; at a quarter of
   it, B - A more workers start (``fps_before`` / ``fps_after``: steady rates as above). ``pause_s``: per
   partition that moved (``moved_partitions``), from the last result of its old owner to the first of its
   new owner (cooperative-sticky rebalancing stops only the moving partitions); ``max``/``median``.
   ``stall_s``: the longest gap with no result at all from any worker. ``recovery_s``: from the start
   command to the last result; ``projected_s``: what the A workers alone would have needed at their rate
   before the scale-up; ``new_first_result_s``: start command to the first result of a new worker (process
   start, imports, model load, the rebalance).

On a shared, loaded machine absolute rates move with everyone else's load: compare the ratios
(``speedup``), which the machine's load affects about equally. ``load_1m`` is printed with every phase.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for entry in (str(REPO_ROOT), str(REPO_ROOT / "bench")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench_workers import cached_frames, process_cpu_s, producer, say  # noqa: E402

from infra.kafka_topics import delete_topics, ensure_topics  # noqa: E402
from lineguard.stack.endpoints import resolve_endpoints  # noqa: E402
from schemas.records import Frame, ImageEncoding, InspectionResult  # noqa: E402
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer  # noqa: E402
from schemas.topics import TopicNames  # noqa: E402

PARTITIONS = 8
CAMERAS = tuple(f"scale-cam-{i:02d}" for i in range(16))


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Results:
    """Reads the results topic on a thread: (Kafka timestamp s, source partition, worker id) per result."""

    config: dict[str, Any]
    topic: str
    seen: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        decode = AvroRecordDeserializer(InspectionResult)
        consumer = Consumer(
            {
                **self.config,
                "group.id": f"scale-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        parts = consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions
        consumer.assign([TopicPartition(self.topic, p, 0) for p in parts])
        try:
            while not self._stop.is_set():
                for message in consumer.consume(500, timeout=0.2):
                    if message.error() is None and message.value() is not None:
                        result = decode(message.value())
                        if result is None:
                            continue
                        stamp = message.timestamp()[1] / 1000.0
                        self.seen.append((stamp, result.source.partition, result.worker_id))
        finally:
            consumer.close()

    def wait(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.seen)} of {count} results after {timeout_s:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


class Workers:
    def __init__(self, topics: TopicNames, database: str, model: Path, group: str) -> None:
        endpoints = resolve_endpoints()
        self._env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
            "MONGODB_URI": endpoints.mongodb_uri,
            "LINEGUARD_MONGODB_DATABASE": database,
            "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
            "LINEGUARD_WORKER_RESULTS_TOPIC": topics.results,
            "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": topics.defect_events,
            "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": topics.dead_letters,
            "LINEGUARD_WORKER_GROUP_ID": group,
            "LINEGUARD_WORKER_MODEL": str(model),
            "LINEGUARD_WORKER_AUTO_OFFSET_RESET": "earliest",
            "LINEGUARD_WORKER_DECODE_THREADS": "1",
            "LINEGUARD_WORKER_INFERENCE_THREADS": "1",
            "LINEGUARD_WORKER_METRICS_HOST": "127.0.0.1",
            "LINEGUARD_LOG_LEVEL": "WARNING",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.cpu: list[tuple[float, float]] = []  # (time, CPU seconds of every worker so far), every 0.25 s
        self._sampling = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._sampling.wait(0.25):
            used = [process_cpu_s(p.pid) for p in list(self.processes)]
            self.cpu.append((time.time(), sum(u for u in used if u is not None)))

    def start(self, count: int) -> list[str]:
        """Start ``count`` more workers; their worker ids."""
        ids = []
        for _ in range(count):
            port, worker_id = _free_port(), f"scale-{uuid.uuid4().hex[:6]}"
            env = {
                **self._env,
                "LINEGUARD_WORKER_METRICS_PORT": str(port),
                "LINEGUARD_WORKER_WORKER_ID": worker_id,
            }
            command = ["nice", "-n", "10", sys.executable, "-m", "workers"]
            self.processes.append(subprocess.Popen(command, env=env, cwd=REPO_ROOT))
            self.ports.append(port)
            ids.append(worker_id)
        return ids

    def stop(self) -> None:
        self._sampling.set()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def publish(
    config: dict[str, Any], topic: str, jpegs: list[bytes], size: tuple[int, int], count: int
) -> None:
    serializer = AvroRecordSerializer(Frame)
    sender = producer(config)
    base = time.time_ns() // 1000
    for index in range(count):
        camera = CAMERAS[index % len(CAMERAS)]
        frame = Frame(
            camera_id=camera,
            line_id="scale-line",
            station_id="scale-station",
            frame_number=base + index,
            captured_at=datetime.now(UTC),
            width=size[0],
            height=size[1],
            channels=3,
            encoding=ImageEncoding.JPEG,
            image=jpegs[index % len(jpegs)],
        )
        while True:
            try:
                sender.produce(topic, key=camera.encode(), value=serializer(frame))
                break
            except BufferError:
                sender.poll(0.05)
        sender.poll(0)
    assert sender.flush(60) == 0


class Phase:
    def __init__(self, config: dict[str, Any], model: Path, label: str) -> None:
        self.config = config
        self.topics = TopicNames.with_prefix(f"bench-scale-{label}-{uuid.uuid4().hex[:6]}")
        ensure_topics(config, [self.topics.frames, self.topics.results], partitions=PARTITIONS)
        ensure_topics(config, [self.topics.defect_events, self.topics.dead_letters], partitions=1)
        self.database = f"bench_scale_{uuid.uuid4().hex[:8]}"
        self.workers = Workers(self.topics, self.database, model, f"scale-{uuid.uuid4().hex[:6]}")
        self.results = Results(config, self.topics.results)

    def close(self) -> None:
        self.workers.stop()
        self.results.stop()
        delete_topics(
            self.config,
            [self.topics.frames, self.topics.results, self.topics.defect_events, self.topics.dead_letters],
        )
        from pymongo import MongoClient

        client: Any = MongoClient(resolve_endpoints().mongodb_uri)
        client.drop_database(self.database)
        client.close()


def throughput(
    config: dict[str, Any], model: Path, jpegs: list[bytes], args: argparse.Namespace, n: int
) -> dict[str, Any]:
    phase = Phase(config, model, f"n{n}")
    try:
        # The backlog first, so the rate is the workers' and not the producer's.
        publish(config, phase.topics.frames, jpegs, args.size, args.backlog)
        phase.results.start()
        load_before = load_1m()
        phase.workers.start(n)
        phase.results.wait(args.backlog, 900)
        figures = {
            **steady_rate(phase.results.seen, n, phase.workers.cpu),
            "load_1m": [load_before, load_1m()],
        }
        say(f"{n} worker(s): {figures}")
        return figures
    finally:
        phase.close()


def steady_rate(
    seen: list[tuple[float, int, str]],
    n: int,
    cpu: list[tuple[float, float]],
    until: float | None = None,
) -> dict[str, Any]:
    """Results/s once every one of the ``n`` workers has produced a result, up to the 90th percentile (or
    ``until``): start-up and the tail left out. Also the CPU the workers got in that window (``cores``) and
    CPU per frame (``cpu_ms_per_frame``): on a shared machine the rate follows the cores the workers were
    given, the CPU per frame says whether more workers cost more per frame."""
    ordered = sorted(seen)
    firsts: dict[str, float] = {}
    for stamp, _p, worker in ordered:
        firsts.setdefault(worker, stamp)
    start = max(firsts.values())
    end = until if until is not None else ordered[(len(ordered) * 9) // 10][0]
    inside = [s for s, _p, _w in ordered if start <= s <= end]
    samples = list(cpu)

    def cpu_at(moment: float) -> float:
        return min(samples, key=lambda sample: abs(sample[0] - moment))[1] if samples else 0.0

    used = cpu_at(end) - cpu_at(start)
    return {
        "fps": round(len(inside) / max(1e-9, end - start), 1),
        "cores": round(used / max(1e-9, end - start), 2),
        "cpu_ms_per_frame": round(1000 * used / max(1, len(inside)), 2),
        "workers_with_results": len(firsts),
        "window_results": len(inside),
        "all_workers_in_window": len(firsts) == n and len(inside) >= len(ordered) // 4,
    }


def scale_up(
    config: dict[str, Any], model: Path, jpegs: list[bytes], args: argparse.Namespace, before: int, after: int
) -> dict[str, Any]:
    phase = Phase(config, model, f"s{before}{after}")
    total = args.backlog * 2
    try:
        publish(config, phase.topics.frames, jpegs, args.size, total)
        phase.results.start()
        load_before = load_1m()
        phase.workers.start(before)
        phase.results.wait(total // 4, 900)
        at = time.time()
        steady_before = steady_rate(list(phase.results.seen), before, phase.workers.cpu, until=at)
        rate_before = steady_before["fps"]
        done_before = len(phase.results.seen)
        new_ids = set(phase.workers.start(after - before))
        phase.results.wait(total, 900)
        seen = sorted(phase.results.seen)
        end = seen[-1][0]
        pauses = []  # per moved partition: last result of its old owner -> first result of its new one
        for partition in range(PARTITIONS):
            owners = [(stamp, worker) for stamp, p, worker in seen if p == partition]
            for (before_s, old), (after_s, new) in itertools.pairwise(owners):
                if after_s > at and new != old:
                    pauses.append(after_s - before_s)
                    break
        overall = [b[0] - a[0] for a, b in itertools.pairwise(seen) if b[0] > at]
        first_new = min((s for s, _p, w in seen if w in new_ids), default=None)
        projected = (total - done_before) / max(1e-9, rate_before)
        figures = {
            "fps_before": round(rate_before, 1),
            "cores_before": steady_before["cores"],
            **{
                f"{k}_after": v
                for k, v in steady_rate(seen, after, phase.workers.cpu).items()
                if k in ("fps", "cores")
            },
            "moved_partitions": len(pauses),
            "pause_s": {"max": round(max(pauses), 2), "median": round(statistics.median(pauses), 2)}
            if pauses
            else None,
            "stall_s": round(max(overall), 2) if overall else None,
            "recovery_s": round(end - at, 1),
            "projected_s": round(projected, 1),
            "new_first_result_s": round(first_new - at, 1) if first_new else None,
            "load_1m": [load_before, load_1m()],
        }
        say(f"{before} -> {after} workers: {figures}")
        return figures
    finally:
        phase.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=2400)
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(640, 512))
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--scale", default="1:2,2:4", help="scale-ups A:B; empty = none")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from workers.serving import default_model_path

    model = default_model_path().resolve()
    config = resolve_endpoints().kafka_config()
    jpegs = [f.jpeg for f in cached_frames(64, args.size[0], args.size[1], 85)]
    figures: dict[str, Any] = {
        "cores": os.cpu_count(),
        "partitions": PARTITIONS,
        "size": "x".join(map(str, args.size)),
    }
    for n in (int(v) for v in args.workers.split(",") if v):
        figures[f"workers_{n}"] = throughput(config, model, jpegs, args, n)
    one = figures.get("workers_1", {}).get("fps")
    if one:
        figures["speedup"] = {
            k: round(v["fps"] / one, 2) for k, v in figures.items() if k.startswith("workers_")
        }
    for pair in (p for p in args.scale.split(",") if p):
        before, after = (int(v) for v in pair.split(":"))
        figures[f"scale_{before}_to_{after}"] = scale_up(config, model, jpegs, args, before, after)
    print(json.dumps(figures, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
