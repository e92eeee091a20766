"""Soak: a publisher and one worker for ``--minutes N``; is the worker's memory, latency and lag flat?

    nice -n 10 .venv/bin/python bench/bench_soak.py --minutes 15 --fps 10 [--json-out soak.json]

Kafka and MongoDB come from KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI or the running local stack; the run uses
topics and a database of its own (uuid), deleted afterwards. The worker is ``python -m workers`` as the
fault harness starts it (:mod:`chaos.worker_process`, the chaos test model unless ``--model``); the camera
side is streams' own publisher at ``--fps``, each frame stamped when it is sent.

Sampled once a minute (after ``--warmup-minutes``, which are left out of the slopes):

* ``rss_mb``: the worker's resident memory (``/proc/<pid>/status`` VmRSS) and ``open_fds``;
* ``p50_ms`` / ``p99_ms``: capture -> result over the results that minute (the result record's Kafka
  timestamp minus the frame's ``captured_at``);
* ``lag_records``: the worker group's consumer lag on the frames topic (high watermark - committed).

Periodic faults (``--fault-every-minutes``, default 10; 0 = none): the worker reaches MongoDB through a fault
proxy (:mod:`chaos.soak_faults`), and every N minutes its link gets a partition, a reset, 300 ms of latency or
a half-open connection, in turn (``--fault-s`` long). The worker lives through them, so RSS and fds stay one
series. A sample that overlaps a fault or the ``--fault-grace-s`` after it is marked ``"fault": true``: the
p50/p99/lag slopes and ``p99_outside_faults_ms`` (judged against ``--p99-bound-ms``) leave those out; RSS and
fds keep them (a leak under faults is the point).

Each series gets a least-squares slope per hour, its 2-standard-error band and a verdict: ``flat`` when the
slope is under ``--tolerance-pct`` of the series' mean per hour (the issue's RSS goal: 1 %) or inside its
2-standard-error band (no trend the samples can tell from noise), else ``not flat``. A 15-minute run says
little about hours: an hour-scale leak that small is inside the band of so few samples.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from chaos.audit import percentile  # noqa: E402
from chaos.frames import good_frames  # noqa: E402
from chaos.model import resolve_model  # noqa: E402
from chaos.netfaults import proxied_mongodb_uri  # noqa: E402
from chaos.netproxy import FaultProxy  # noqa: E402
from chaos.soak_faults import PeriodicFaults, overlaps  # noqa: E402
from chaos.worker_process import WorkerOptions, WorkerProcess  # noqa: E402
from infra.kafka_topics import ensure_topics  # noqa: E402
from lineguard.lag.exporter import LagReader  # noqa: E402
from lineguard.stack.endpoints import Endpoints, resolve_endpoints  # noqa: E402
from schemas.records import Frame, InspectionResult  # noqa: E402
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer  # noqa: E402
from schemas.topics import TopicNames  # noqa: E402
from streams.publisher import FramePublisher, PublisherOptions  # noqa: E402

SERIES = ("rss_mb", "open_fds", "p50_ms", "p99_ms", "lag_records")


def slope_per_hour(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope of (minutes, value) points, per hour, and its standard error (pure)."""
    n = len(points)
    if n < 3:
        return 0.0, math.inf
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, math.inf
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in points)
    stderr = math.sqrt(residual / (n - 2) / sxx)
    return slope * 60, stderr * 60


def verdict(points: list[tuple[float, float]], tolerance_pct: float) -> dict[str, Any]:
    """The slope figures of one series and whether it is flat (see the module docstring; pure)."""
    slope, stderr = slope_per_hour(points)
    mean = statistics.fmean(y for _, y in points) if points else 0.0
    pct = 100 * slope / mean if mean else 0.0
    flat = abs(pct) < tolerance_pct or abs(slope) <= 2 * stderr
    return {
        "slope_per_h": round(slope, 3),
        "two_stderr_per_h": None if math.isinf(stderr) else round(2 * stderr, 3),
        "mean": round(mean, 3),
        "slope_pct_of_mean_per_h": round(pct, 2),
        "verdict": "flat" if flat else "not flat",
    }


def _proc_figures(pid: int) -> tuple[float, int]:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def _cpu_s(pid: int) -> float:
    """The process's user + system CPU seconds so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Publisher(threading.Thread):
    """Frames at ``fps``, each stamped as it is made (``good_frames`` is lazy), until stopped."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, fps: float) -> None:
        super().__init__(name="soak-publisher", daemon=True)
        self._publisher = FramePublisher(
            PublisherOptions(topic=topic), kafka_config, AvroRecordSerializer(Frame)
        )
        self._fps = fps
        self.stop_event = threading.Event()
        self.sent = 0

    def run(self) -> None:
        next_at = time.monotonic()
        for frame in good_frames(0, 10**9, cameras=4):
            if self.stop_event.is_set():
                break
            self._publisher.publish(frame)
            self.sent += 1
            next_at += 1 / self._fps
            while (wait := next_at - time.monotonic()) > 0:
                self._publisher.poll(min(wait, 0.05))
        self._publisher.close(timeout_s=30)


class ResultWatch(threading.Thread):
    """Capture -> result latency of every committed result, in arrival order."""

    def __init__(self, kafka_config: dict[str, Any], topic: str) -> None:
        from confluent_kafka import Consumer

        super().__init__(name="soak-results", daemon=True)
        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"soak-watch-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([topic])
        self._decode = AvroRecordDeserializer(InspectionResult)
        self.latencies_ms: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for message in self._consumer.consume(500, timeout=0.5):
                if message.error() is not None or message.value() is None:
                    continue
                result = self._decode(message.value())
                if result is None:
                    continue
                landed = datetime.fromtimestamp(message.timestamp()[1] / 1000, UTC)
                self.latencies_ms.append((landed - result.captured_at).total_seconds() * 1000)
        self._consumer.close()


def run(args: argparse.Namespace, endpoints: Endpoints) -> dict[str, Any]:
    from pymongo import MongoClient

    tag = uuid.uuid4().hex[:8]
    topics = TopicNames.with_prefix(f"soak-{tag}")
    kafka_config = endpoints.kafka_config()
    ensure_topics(kafka_config, [topics.frames, topics.results, topics.defect_events, topics.dead_letters])
    database = f"soak_{tag}"
    group = f"soak-{tag}"
    work_dir = Path(tempfile.mkdtemp(prefix="lineguard-soak-"))
    proxy = FaultProxy(*_mongodb_host_port(endpoints.mongodb_uri), name="soak-mongodb").start()
    worker_endpoints = Endpoints(
        endpoints.kafka_bootstrap, proxied_mongodb_uri(endpoints.mongodb_uri, proxy.port)
    )
    worker = WorkerProcess(
        WorkerOptions(topics, group, resolve_model(args.model), database, f"soak-worker-{tag}"),
        worker_endpoints,
        work_dir / "worker.log",
    )
    faults = PeriodicFaults(proxy, 60 * args.fault_every_minutes, args.fault_s)
    watch = ResultWatch(kafka_config, topics.results)
    publisher = Publisher(kafka_config, topics.frames, args.fps)
    lag = LagReader(kafka_config, group, topics.frames)
    samples: list[dict[str, Any]] = []
    calm_latencies: list[float] = []
    try:
        worker.start()
        watch.start()
        publisher.start()
        started = time.monotonic()
        faults.start()
        seen = 0
        cpu_before = 0.0
        for minute in range(1, args.minutes + 1):
            time.sleep(max(0.0, started + 60 * minute - time.monotonic()))
            if worker.check() is not None:  # counted (worker_restarts) and restarted: the soak goes on
                print(f"the worker exited; see {worker.log_path}; restarting it", file=sys.stderr)
                worker.start()
                cpu_before = 0.0
                time.sleep(5)
            assert worker.pid is not None
            rss_mb, fds = _proc_figures(worker.pid)
            cpu_now = _cpu_s(worker.pid)
            cpu_pct = max(0.0, cpu_now - cpu_before) / 60 * 100  # of one core, over the minute
            cpu_before = cpu_now
            window = watch.latencies_ms[seen:]
            seen += len(window)
            end = time.monotonic()
            faulted = overlaps(end - 60, end, list(faults.windows), args.fault_grace_s)
            if not faulted and minute > args.warmup_minutes:
                calm_latencies.extend(window)
            sample = {
                "minute": minute,
                "fault": faulted,
                "rss_mb": round(rss_mb, 1),
                "open_fds": fds,
                "worker_cpu_pct": round(cpu_pct, 1),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "results": len(window),
                "p50_ms": percentile(window, 0.5),
                "p99_ms": percentile(window, 0.99),
                "lag_records": lag.read().records,
            }
            samples.append(sample)
            print(json.dumps(sample), file=sys.stderr, flush=True)
    finally:
        faults.close()
        publisher.stop_event.set()
        publisher.join(60)
        worker.terminate(60)
        watch.stop_event.set()
        watch.join(10)
        lag.close()
        client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri)
        client.drop_database(database)
        client.close()
        proxy.close()
    steady = [s for s in samples if s["minute"] > args.warmup_minutes]
    tolerance = {"rss_mb": args.tolerance_pct, "open_fds": args.tolerance_pct}
    calm = ("p50_ms", "p99_ms", "lag_records")  # judged outside fault windows
    slopes = {
        name: verdict(
            [
                (s["minute"], float(s[name]))
                for s in steady
                if s[name] is not None and not (name in calm and s["fault"])
            ],
            tolerance.get(name, args.latency_tolerance_pct),
        )
        for name in SERIES
    }
    p99_calm = percentile(calm_latencies, 0.99)
    return {
        "minutes": args.minutes,
        "faults": [
            {
                "kind": w.kind,
                "at_minute": round((w.started - started) / 60, 2),
                "s": round(w.ended - w.started, 1),
            }
            for w in faults.windows
        ],
        "fault_samples": sum(1 for s in samples if s["fault"]),
        "worker_cpu_pct_mean": _mean([s["worker_cpu_pct"] for s in steady]),
        "load_avg_1m_mean": _mean([s["load_avg_1m"] for s in samples]),
        "p99_outside_faults_ms": p99_calm,
        "p99_bound_ms": args.p99_bound_ms,
        "p99_within_bound": p99_calm is not None and p99_calm <= args.p99_bound_ms,
        "worker_restarts": worker.starts - 1,  # exits nobody ordered: RSS restarts with them
        "fps": args.fps,
        "warmup_minutes": args.warmup_minutes,
        "frames_sent": publisher.sent,
        "results": len(watch.latencies_ms),
        "samples": samples,
        "slopes": slopes,
        "flat": all(s["verdict"] == "flat" for s in slopes.values()),
        "worker_log": str(worker.log_path),
    }


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def _mongodb_host_port(uri: str) -> tuple[str, int]:
    """The first host of a mongodb:// URI, for the proxy's upstream (pure)."""
    host = urlsplit(uri).netloc.rpartition("@")[2].split(",")[0]
    name, _, port = host.rpartition(":")
    return (name.strip("[]") or "127.0.0.1", int(port or 27017))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=15)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=int, default=2)
    parser.add_argument("--tolerance-pct", type=float, default=1.0, help="RSS and fds: flat under this %%/h")
    parser.add_argument("--latency-tolerance-pct", type=float, default=10.0, help="latency and lag: %%/h")
    parser.add_argument("--fault-every-minutes", type=float, default=10.0, help="0 = no faults")
    parser.add_argument("--fault-s", type=float, default=20.0, help="partition / latency length")
    parser.add_argument("--fault-grace-s", type=float, default=30.0, help="recovery left out after a fault")
    parser.add_argument("--p99-bound-ms", type=float, default=200.0, help="p99 bound outside fault windows")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    if args.minutes < args.warmup_minutes + 3:
        parser.error("--minutes must leave at least 3 samples after --warmup-minutes")
    if args.fps <= 0:
        parser.error("--fps must be positive")
    figures = run(args, resolve_endpoints())
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()
