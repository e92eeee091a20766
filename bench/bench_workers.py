"""Benchmark the inference worker on one set of frames and one model (issue 4, "Benchmark").

    .venv/bin/python bench/bench_workers.py [--model DIR] [--quick] [--backlog 20000] [--json]

Kafka and MongoDB come from KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI or the running local stack. Frames are
synthetic 1280x1024 JPEGs (generated once, cached under <cache dir>/bench/); the model is the shipped default
unless --model names another artifact. Every phase uses its own topics and database, deleted afterwards.

Phases and the figures they give (``--json`` prints them as one object):

1. stage bound (``stage_bound_fps``): the worker's own decoder (Avro -> JPEG -> preprocess) on a thread pool
   of all cores, feeding the model in batches of ``max_batch_size`` on the main thread; no Kafka, no MongoDB.
   Also measured alone: decode-only frames/s, and the model's time for one full batch.
2. pipeline (``pipeline_fps``): a backlog already on the frames topic, drained by a ``python -m workers``
   subprocess through Kafka and MongoDB; the rate between its first and its last result.
3. naive (``naive_fps``): one message at a time in this process: consume one, decode, predict one frame
   with the worker's backend, ``insert_one``, commit synchronously; ``naive_*_ms`` splits the time per frame.
   ``naive_keras_fps`` is the same loop with Keras ``model.predict`` per frame (the usual first version).
4. latency (``p50_ms``, ``p99_ms``): frames published at 70 % of ``pipeline_fps`` to the same worker by a
   warmed-up producer; capture time to the result record's Kafka timestamp. Goal: p99 <= max_wait_ms + 2 x
   batch inference time (``p99_bound_ms``). ``--loads 0.3,0.5,0.7`` measures several loads
   (``latency_by_load``), each split by the result's own timestamps into ``to_worker`` (camera, Kafka,
   prefetch), ``in_worker`` (decode, batching, waiting for the model, the model) and ``to_output``.
   ``--deadline-ms 200`` runs this phase with a capture -> verdict deadline (``--fail-safe reject|pass``):
   each load then also gives ``inspected`` (p50/p99 of the frames the model inspected) and
   ``fail_safe_share`` (results decided fail-safe, ``deadline_missed``).
5. memory (``peak_rss_mb``): a fresh worker started against a backlog of ``--backlog`` frames (the distinct
   frames re-published); its peak RSS (VmHWM) while it works through the backlog for ``--rss-seconds``.

``pipeline_cpu_cores`` and each load's ``cpu_cores``: the cores used by the worker, the local stack's broker
and database and this process (publisher, watcher), which on a small machine all share the same cores.

Ratios: ``pipeline_over_stage_bound`` (goal >= 0.90), ``pipeline_over_naive`` (goal >= 10) and
``pipeline_over_naive_keras``. Figures on a
shared 2-core machine vary from run to run: read them with the other processes in mind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from infra.kafka_topics import delete_topics, ensure_topics  # noqa: E402
from infra.settings import default_cache_dir  # noqa: E402
from lineguard.demo.tally import DemoTally  # noqa: E402
from lineguard.demo.watch import OutputWatcher, wait_for_assignment  # noqa: E402
from lineguard.stack.endpoints import Endpoints, resolve_endpoints  # noqa: E402
from schemas.records import Frame, GroundTruth, ImageEncoding  # noqa: E402
from schemas.serde import AvroRecordSerializer  # noqa: E402
from schemas.topics import TopicNames  # noqa: E402

CAMERAS = ("bench-cam-1", "bench-cam-2", "bench-cam-3")
PARTITIONS = 3
MAX_BATCH_SIZE = 32
MAX_WAIT_MS = 20.0


@dataclass(frozen=True, slots=True)
class Sizes:
    distinct: int  # distinct encoded frames (generated once, cached)
    stage_frames: int  # frames through the in-process stage bound
    pipeline_frames: int  # backlog drained by the worker for pipeline_fps
    naive_frames: int
    naive_keras_frames: int
    latency_s: float  # publishing time at each load
    backlog: int  # frames for the memory phase
    rss_s: float  # how long the memory phase watches the worker
    loads: tuple[float, ...] = (0.7,)  # fractions of pipeline_fps to publish at for latency


def sizes_for(args: argparse.Namespace) -> Sizes:
    loads = _loads(args.loads)
    if args.quick:
        return Sizes(40, 160, 400, 40, 20, 10.0, args.backlog or 2_000, 20.0, loads)
    return Sizes(200, 600, 2_000, 150, 60, 40.0, args.backlog or 20_000, 60.0, loads)


LATENCY_LOAD = 0.7  # the load for p50_ms / p99_ms


def _loads(text: str) -> tuple[float, ...]:
    try:
        loads = tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise SystemExit(f"--loads: expected fractions like 0.3,0.7, got {text!r}") from None
    if not loads or not all(0 < load <= 1.5 for load in loads):
        raise SystemExit(f"--loads: fractions of pipeline_fps within (0, 1.5], got {text!r}")
    return loads


def _percentages(loads: tuple[float, ...]) -> str:
    return ", ".join(f"{load:.0%}" for load in loads)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    jpeg: bytes
    labels: tuple[str, ...]


def cached_frames(count: int, width: int, height: int, quality: int, seed: int = 0) -> list[EncodedFrame]:
    """``count`` synthetic JPEG frames, generated once and kept under the cache directory."""
    import cv2

    from vision.synthetic import GOOD_LABEL, SyntheticDefectGenerator

    directory = default_cache_dir() / "bench" / f"frames-{width}x{height}-q{quality}-seed{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    labels_file = directory / "labels.json"
    labels: dict[str, list[str]] = json.loads(labels_file.read_text()) if labels_file.exists() else {}
    generator: SyntheticDefectGenerator | None = None
    frames = []
    for index in range(count):
        path = directory / f"{index:05d}.jpg"
        if not path.exists() or str(index) not in labels:
            if generator is None:
                say(f"generating {width}x{height} frames into {directory} (once)")
                generator = SyntheticDefectGenerator(width=width, height=height, defect_rate=0.3, seed=seed)
            sample = generator.generate(index)
            assert sample.image is not None  # generate() always renders pixels
            ok, buffer = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok
            path.write_bytes(buffer.tobytes())
            labels[str(index)] = [] if sample.label == GOOD_LABEL else [sample.label]
        frames.append(EncodedFrame(path.read_bytes(), tuple(labels[str(index)])))
    if generator is not None:
        labels_file.write_text(json.dumps(labels))
    return frames


class FrameFactory:
    """Frame records from the distinct frames, with unique identities and a fresh capture time."""

    def __init__(self, frames: list[EncodedFrame], width: int, height: int) -> None:
        self._frames = frames
        self._width = width
        self._height = height
        self._serializer = AvroRecordSerializer(Frame)
        self._next = 0
        self._base = time.time_ns() // 1000  # frame numbers keep growing across runs, like a camera's

    def next(self) -> tuple[str, int, tuple[str, ...], bytes]:
        """(camera id, frame number, ground-truth labels, serialized Frame)."""
        index = self._next
        self._next += 1
        source = self._frames[index % len(self._frames)]
        camera = CAMERAS[index % len(CAMERAS)]
        number = self._base + index
        frame = Frame(
            camera_id=camera,
            line_id="bench-line",
            station_id="bench-station",
            frame_number=number,
            captured_at=datetime.now(UTC),
            width=self._width,
            height=self._height,
            channels=3,
            encoding=ImageEncoding.JPEG,
            image=source.jpeg,
            ground_truth=GroundTruth(labels=source.labels),
        )
        return camera, number, source.labels, self._serializer(frame)


def producer(kafka_config: dict[str, Any]) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            **kafka_config,
            "enable.idempotence": True,
            "linger.ms": 2,
            "queue.buffering.max.kbytes": 256 * 1024,
            "message.max.bytes": 4 * 1024 * 1024,
        }
    )


def publish_backlog(
    kafka_config: dict[str, Any], topic: str, factory: FrameFactory, count: int, tally: DemoTally | None
) -> float:
    """Publish ``count`` frames as fast as Kafka takes them; returns MB published."""
    from confluent_kafka import KafkaException

    sender = producer(kafka_config)
    failures: list[str] = []
    sent_bytes = 0
    for _ in range(count):
        camera, number, labels, value = factory.next()
        if tally is not None:
            tally.expect((camera, number), labels)
        while True:
            try:
                sender.produce(
                    topic,
                    key=camera.encode(),
                    value=value,
                    on_delivery=lambda err, _m: failures.append(err.str()) if err else None,
                )
                break
            except BufferError:
                sender.poll(0.05)
        sent_bytes += len(value)
        sender.poll(0)
    if sender.flush(120) != 0 or failures:
        raise KafkaException(f"backlog not delivered: {failures[:3]}")
    return sent_bytes / 1e6


# --------------------------------------------------------------------------------------- stage bound


def load_model(path: Path) -> Any:
    from workers.backends import load_model as load

    return load(path, "auto", os.cpu_count() or 1, warm_up_batch=MAX_BATCH_SIZE)


def make_decoder(model: Any) -> Any:
    from vision.preprocess import preprocess_batch
    from workers.decode import FrameDecoder, ImageSpec

    spec = model.metadata.preprocess

    def preprocess_one(image: np.ndarray) -> np.ndarray:
        return preprocess_batch([image], spec)[0]

    return FrameDecoder(
        preprocess_one,
        ImageSpec(width=spec.width, height=spec.height, grayscale=spec.channels == 1),
        max_image_pixels=40_000_000,
        max_image_bytes=10 * 1024 * 1024,
    )


def stage_bound(model: Any, factory: FrameFactory, count: int) -> dict[str, float]:
    """Decode on all cores beside batched inference, in process; plus each stage alone."""
    from workers.offsets import Ticket

    decoder = make_decoder(model)
    records = [factory.next()[3] for _ in range(count)]
    ticket = Ticket("bench", 0, 0, 0)
    cores = os.cpu_count() or 1

    # Decode alone, all cores.
    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        tensors = [d.tensor for d in pool.map(lambda value: decoder.decode(value, ticket), records)]
    decode_fps = count / (time.perf_counter() - started)

    # Inference alone, full batches.
    batch = np.stack(tensors[:MAX_BATCH_SIZE])
    model.predict(batch)
    rounds = max(3, min(20, count // MAX_BATCH_SIZE))
    started = time.perf_counter()
    for _ in range(rounds):
        model.predict(batch)
    batch_s = (time.perf_counter() - started) / rounds

    # Both at once: the pool decodes while the main thread runs the model (the worker's overlap).
    decoded: queue.Queue[np.ndarray] = queue.Queue()
    cpu_started = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        for value in records:
            pool.submit(lambda v: decoded.put(decoder.decode(v, ticket).tensor), value)
        done = 0
        while done < count:
            items = [decoded.get()]
            while len(items) < MAX_BATCH_SIZE and done + len(items) < count:
                try:
                    items.append(decoded.get(timeout=MAX_WAIT_MS / 1000))
                except queue.Empty:
                    break
            model.predict(np.stack(items))
            done += len(items)
    stage_fps = count / (time.perf_counter() - started)
    return {
        "stage_bound_fps": stage_fps,
        "stage_cpu_ms_per_frame": (time.process_time() - cpu_started) * 1000 / count,
        "decode_only_fps": decode_fps,
        "inference_only_fps": MAX_BATCH_SIZE / batch_s,
        "batch_inference_ms": batch_s * 1000,
    }


# -------------------------------------------------------------------------------------- worker process


class BenchWorker:
    """``python -m workers`` on a set of topics, with its log under the bench cache directory."""

    def __init__(
        self,
        endpoints: Endpoints,
        topics: TopicNames,
        database: str,
        model: Path,
        log_dir: Path,
        group: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.group = group or f"bench-workers-{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"worker-{self.group}.log"
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
                "MONGODB_URI": endpoints.mongodb_uri,
                "LINEGUARD_MONGODB_DATABASE": database,
                "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
                "LINEGUARD_WORKER_RESULTS_TOPIC": topics.results,
                "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": topics.defect_events,
                "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": topics.dead_letters,
                "LINEGUARD_WORKER_GROUP_ID": self.group,
                "LINEGUARD_WORKER_MODEL": str(model),
                "LINEGUARD_WORKER_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE),
                "LINEGUARD_WORKER_MAX_WAIT_MS": str(MAX_WAIT_MS),
                "LINEGUARD_WORKER_SESSION_TIMEOUT_MS": "10000",
                **(extra_env or {}),
            }
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers"],
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, kafka_config: dict[str, Any], topic: str, timeout_s: float = 120.0) -> None:
        alive = lambda: self.process.poll() is None  # noqa: E731
        if not wait_for_assignment(kafka_config, self.group, topic, timeout_s, alive=alive):
            raise RuntimeError(f"worker did not start; see {self.log_path}")

    def cpu_s(self) -> float | None:
        """User + system CPU seconds the worker has used so far (all threads)."""
        return process_cpu_s(self.process.pid)

    def peak_rss_mb(self) -> float | None:
        return _status_kb(self.process.pid, "VmHWM")

    def rss_mb(self) -> float | None:
        return _status_kb(self.process.pid, "VmRSS")

    def stop(self, timeout_s: float = 60.0) -> tuple[int, float]:
        """SIGTERM and wait: (exit code, seconds to exit)."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode, time.monotonic() - started


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used so far (all threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares:
    """Cores each process on this machine used over a phase: the worker, the local stack's broker and
    database (when the endpoints are the local stack's), and this benchmark process (publisher, watcher).
    On a small machine they all share the cores, so the shares say how much of it the worker had."""

    def __init__(self, endpoints: Endpoints, worker: BenchWorker) -> None:
        self._pids = {"worker": worker.process.pid, "bench client": os.getpid()}
        self._pids.update(_local_stack_pids(endpoints))
        self._started = time.monotonic()
        self._before = {name: process_cpu_s(pid) for name, pid in self._pids.items()}

    def cores(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started
        shares = {}
        for name, pid in self._pids.items():
            before, now = self._before[name], process_cpu_s(pid)
            if before is not None and now is not None and elapsed > 0:
                shares[name] = (now - before) / elapsed
        return shares


def _local_stack_pids(endpoints: Endpoints) -> dict[str, int]:
    """PIDs of the local stack's services that these endpoints point at (none for an external cluster)."""
    from lineguard.stack.endpoints import default_state_dir
    from lineguard.stack.state import read_state

    pids = {}
    for service in read_state(default_state_dir()).services.values():
        used = endpoints.kafka_bootstrap if service.name == "kafka" else endpoints.mongodb_uri
        if service.pid is not None and f"{service.host}:{service.port}" in used:
            pids[service.name] = service.pid
    return pids


def _status_kb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


@dataclass
class Deployment:
    """Topics and a database of one phase, removed afterwards."""

    kafka_config: dict[str, Any]
    endpoints: Endpoints
    topics: TopicNames
    database: str

    @classmethod
    def create(cls, endpoints: Endpoints, name: str) -> Deployment:
        prefix = f"bench.{name}.{uuid.uuid4().hex[:8]}"
        topics = TopicNames.with_prefix(prefix)
        config = endpoints.kafka_config()
        ensure_topics(config, _all(topics), partitions=PARTITIONS)
        return cls(config, endpoints, topics, f"bench_{name}_{uuid.uuid4().hex[:8]}")

    def remove(self) -> None:
        from pymongo import MongoClient

        delete_topics(self.kafka_config, _all(self.topics))
        client: Any = MongoClient(self.endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
        try:
            client.drop_database(self.database)
        finally:
            client.close()


def _all(topics: TopicNames) -> list[str]:
    return [topics.frames, topics.results, topics.defect_events, topics.dead_letters, _warm_up_topic(topics)]


def _warm_up_topic(topics: TopicNames) -> str:
    return f"{topics.frames}.warm-up"


@dataclass(frozen=True, slots=True)
class Settled:
    """What the worker used from its first result to the last: CPU seconds, frames, and the cores each
    process used meanwhile (model loading and the group join excluded)."""

    worker_cpu_s: float
    frames: int
    cores: dict[str, float]


def wait_settled(
    tally: DemoTally, expected: int, timeout_s: float, worker: BenchWorker, endpoints: Endpoints
) -> Settled | None:
    """Wait until ``expected`` frames are settled; None when /proc cannot tell what the worker used."""
    deadline = time.monotonic() + timeout_s
    last = (-1, time.monotonic())
    first: tuple[float, int] | None = None
    shares: CpuShares | None = None
    while tally.settled < expected:
        if first is None and tally.settled > 0:
            cpu = worker.cpu_s()
            first = (cpu, tally.settled) if cpu is not None else None
            shares = CpuShares(endpoints, worker)
        now = time.monotonic()
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited ({worker.process.returncode}); see {worker.log_path}")
        if tally.settled != last[0]:
            last = (tally.settled, now)
        elif now - last[1] > 60 or now > deadline:
            raise RuntimeError(f"only {tally.settled} of {expected} results; see {worker.log_path}")
        time.sleep(0.2)
    cpu = worker.cpu_s()
    if first is None or shares is None or cpu is None or tally.settled <= first[1]:
        return None
    return Settled(cpu - first[0], tally.settled - first[1], shares.cores())


# ------------------------------------------------------------------------------------ pipeline + latency


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
        say(f"  pipeline: {pipeline_fps:.1f} frames/s; now latency at {_percentages(sizes.loads)} of it")
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
    sender.produce(_warm_up_topic(topics), value=b"warm-up")
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


# -------------------------------------------------------------------------------------------------- naive


def naive(
    endpoints: Endpoints,
    model: Any,
    factory: FrameFactory,
    count: int,
    predict_one: Any = None,
    key: str = "naive",
) -> dict[str, float]:
    """One message at a time: consume, decode, predict one frame, insert_one, commit (synchronously).

    ``predict_one`` (preprocessed batch of one -> defect score) defaults to the worker's backend."""
    import cv2
    from confluent_kafka import Consumer
    from pymongo import MongoClient

    from schemas.serde import AvroRecordDeserializer
    from vision.preprocess import preprocess_batch

    deployment = Deployment.create(endpoints, "naive")
    config, topics = deployment.kafka_config, deployment.topics
    publish_backlog(config, topics.frames, factory, count, None)
    deserializer = AvroRecordDeserializer(Frame)
    spec = model.metadata.preprocess
    client: Any = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
    collection = client[deployment.database]["inspections"]
    consumer = Consumer(
        {
            **config,
            "group.id": f"bench-naive-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics.frames])
    cpu_started = 0.0
    steps = dict.fromkeys(("poll", "decode", "preprocess", "predict", "insert_one", "commit"), 0.0)
    try:
        done = 0
        started: float | None = None
        while done < count:
            mark = time.perf_counter()
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            if started is None:  # the wait for the group join stays outside the clock
                started = mark = time.perf_counter()
                cpu_started = time.process_time()
            mark = _step(steps, "poll", mark)
            frame = deserializer(message.value())
            assert frame is not None
            image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
            mark = _step(steps, "decode", mark)
            tensor = preprocess_batch([image], spec)
            mark = _step(steps, "preprocess", mark)
            if predict_one is None:
                (prediction,) = model.predict(tensor)
                defect_score = float(prediction.defect_score)
            else:
                defect_score = float(predict_one(tensor))
            mark = _step(steps, "predict", mark)
            collection.insert_one(
                {
                    "_id": f"{frame.camera_id}:{frame.frame_number}",
                    "camera_id": frame.camera_id,
                    "frame_number": frame.frame_number,
                    "defect_score": defect_score,
                }
            )
            mark = _step(steps, "insert_one", mark)
            consumer.commit(message=message, asynchronous=False)
            _step(steps, "commit", mark)
            done += 1
        assert started is not None
        figures: dict[str, float] = {
            f"{key}_fps": count / (time.perf_counter() - started),
            f"{key}_frames": count,
            f"{key}_cpu_ms_per_frame": (time.process_time() - cpu_started) * 1000 / count,
        }
        figures.update({f"{key}_{name}_ms": total * 1000 / count for name, total in steps.items()})
        return figures
    finally:
        consumer.close()
        client.close()
        deployment.remove()


def keras_predict_one(model_path: Path, metadata: Any) -> Any:
    """The textbook first version: Keras ``model.predict`` called once per frame."""
    from vision.nets.build import load_keras_model  # registers lineguard's custom layers first

    keras_model = load_keras_model(model_path / (metadata.files.keras or "model.keras"))
    good = list(metadata.classes).index("good") if "good" in metadata.classes else None

    def predict(tensor: np.ndarray) -> float:
        probabilities = keras_model.predict(tensor, verbose=0)[0]
        return 1.0 - float(probabilities[good]) if good is not None else float(np.max(probabilities))

    return predict


def _step(steps: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    steps[name] += now - since
    return now


# ------------------------------------------------------------------------------------------------ memory


def memory(
    endpoints: Endpoints, model_path: Path, factory: FrameFactory, sizes: Sizes, log_dir: Path
) -> dict[str, Any]:
    deployment = Deployment.create(endpoints, "rss")
    config, topics = deployment.kafka_config, deployment.topics
    worker: BenchWorker | None = None
    try:
        started = time.monotonic()
        megabytes = publish_backlog(config, topics.frames, factory, sizes.backlog, None)
        say(
            f"  backlog of {sizes.backlog} frames ({megabytes:.0f} MB, "
            f"{megabytes * 1000 / sizes.backlog:.0f} KB each) in {time.monotonic() - started:.0f} s; "
            f"watching a fresh worker for {sizes.rss_s:.0f} s"
        )
        tally = DemoTally()  # counts results without a ledger: every one is "foreign", which is fine here
        watcher = OutputWatcher(config, topics, tally)
        watcher.start()
        worker = BenchWorker(endpoints, topics, deployment.database, model_path, log_dir)
        samples: list[float] = []
        deadline = time.monotonic() + sizes.rss_s
        while time.monotonic() < deadline and worker.process.poll() is None:
            rss = worker.rss_mb()
            if rss is not None:
                samples.append(rss)
            time.sleep(0.5)
        peak = worker.peak_rss_mb()
        processed = tally.snapshot().foreign_results
        exit_code, stop_s = worker.stop()
        watcher.stop()
        return {
            "peak_rss_mb": peak,
            "rss_last_mb": samples[-1] if samples else None,
            "rss_backlog_frames": sizes.backlog,
            "rss_backlog_mb": megabytes,
            "rss_frames_processed": processed,
            "rss_worker_exit_code": exit_code,
            "rss_worker_stop_s": stop_s,
        }
    finally:
        if worker is not None:
            worker.stop()
        deployment.remove()


# -------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model artifact (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in ~2 minutes")
    parser.add_argument("--backlog", type=int, default=0, help="frames for the memory phase (20000)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality (80: ~200 KB at 1280x1024)")
    parser.add_argument(
        "--phases",
        default="stage,pipeline,naive,memory",
        help="comma-separated subset of stage,pipeline,naive,memory",
    )
    parser.add_argument(
        "--no-keras", action="store_true", help="skip the naive run with Keras model.predict per frame"
    )
    parser.add_argument(
        "--loads",
        default=str(LATENCY_LOAD),
        help="fractions of pipeline_fps to measure latency at, e.g. 0.3,0.5,0.7 (p50_ms/p99_ms: at 0.7)",
    )
    parser.add_argument(
        "--deadline-ms", type=float, default=0.0, help="latency phase with this capture->verdict deadline"
    )
    parser.add_argument("--fail-safe", choices=("reject", "pass"), default="reject")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from workers.pipeline import default_model_path

    sizes = sizes_for(args)
    phases = set(args.phases.split(","))
    endpoints = resolve_endpoints()
    model_path = args.model if args.model is not None else default_model_path()
    log_dir = default_cache_dir() / "bench" / "logs"
    frames = cached_frames(sizes.distinct, args.width, args.height, args.quality)
    factory = FrameFactory(frames, args.width, args.height)
    model = load_model(model_path)
    meta = model.metadata
    figures: dict[str, Any] = {
        "model": f"{meta.name} {meta.version} ({meta.task.value}, {model.backend.name}, "
        f"input {meta.preprocess.width}x{meta.preprocess.height})",
        "frame_size": f"{args.width}x{args.height}",
        "frame_kb": sum(len(f.jpeg) for f in frames) / len(frames) / 1000,
        "max_batch_size": MAX_BATCH_SIZE,
        "max_wait_ms": MAX_WAIT_MS,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    if "stage" in phases:
        say(f"stage bound: {sizes.stage_frames} frames in process")
        load_before = load_1m()
        figures.update(stage_bound(model, factory, sizes.stage_frames))
        figures["load_during_stage"] = (load_before + load_1m()) / 2
    if "naive" in phases:
        say(f"naive: {sizes.naive_frames} frames one at a time")
        figures.update(naive(endpoints, model, factory, sizes.naive_frames))
        if meta.task.value == "classify" and meta.files.keras and not args.no_keras:
            say(f"naive with Keras model.predict per frame: {sizes.naive_keras_frames} frames")
            predict = keras_predict_one(model.path, meta)
            figures.update(
                naive(endpoints, model, factory, sizes.naive_keras_frames, predict, key="naive_keras")
            )
    del model  # the worker subprocesses need the cores and memory now
    if "pipeline" in phases:
        say(f"pipeline: {sizes.pipeline_frames} frames through Kafka, the worker and MongoDB")
        deadline_env = None
        if args.deadline_ms > 0:
            deadline_env = {
                "LINEGUARD_WORKER_DEADLINE_MS": str(args.deadline_ms),
                "LINEGUARD_WORKER_DEADLINE_FAIL_SAFE": args.fail_safe,
            }
        figures.update(pipeline_and_latency(endpoints, model_path, factory, sizes, log_dir, deadline_env))
    if "memory" in phases:
        say(f"memory: a worker against a backlog of {sizes.backlog} frames")
        figures.update(memory(endpoints, model_path, factory, sizes, log_dir))
    derive(figures)
    return figures


def load_1m() -> float:
    """The 1-minute load average: how busy the (shared) machine was while a phase ran."""
    return os.getloadavg()[0]


def derive(figures: dict[str, Any]) -> None:
    """Ratios and the latency bound from the measured figures.

    On a machine shared with other work the fps ratios compare phases run under different loads; the
    ``*_cpu`` ratios compare CPU time per frame instead, which the neighbours do not change (much): the
    pipeline's worker process against the in-process stage bound and the naive loop.
    """
    pipeline = figures.get("pipeline_fps")
    if pipeline and figures.get("stage_bound_fps"):
        figures["pipeline_over_stage_bound"] = pipeline / figures["stage_bound_fps"]
    if pipeline and figures.get("naive_fps"):
        figures["pipeline_over_naive"] = pipeline / figures["naive_fps"]
    if pipeline and figures.get("naive_keras_fps"):
        figures["pipeline_over_naive_keras"] = pipeline / figures["naive_keras_fps"]
    pipeline_cpu = figures.get("pipeline_cpu_ms_per_frame")
    if pipeline_cpu and figures.get("stage_cpu_ms_per_frame"):
        figures["pipeline_over_stage_bound_cpu"] = figures["stage_cpu_ms_per_frame"] / pipeline_cpu
    if pipeline_cpu and figures.get("naive_cpu_ms_per_frame"):
        figures["pipeline_over_naive_cpu"] = figures["naive_cpu_ms_per_frame"] / pipeline_cpu
    if "batch_inference_ms" in figures:
        figures["p99_bound_ms"] = figures["max_wait_ms"] + 2 * figures["batch_inference_ms"]


GOALS = (
    ("pipeline_over_stage_bound", ">=", 0.90),
    ("pipeline_over_naive", ">=", 10.0),
    ("peak_rss_mb", "<", 2_000.0),
)


def report(figures: dict[str, Any]) -> Iterator[str]:
    for key, value in figures.items():
        if key == "pipeline_cpu_cores" and isinstance(value, dict):
            yield f"{key:28s} " + ", ".join(f"{name} {cores:.2f}" for name, cores in value.items())
        elif key == "latency_by_load":
            for load, row in value.items():
                yield (
                    f"latency at {float(load):4.0%} load         {row['rate_fps']:,.1f} frames/s: "
                    f"p50 {row['p50']:,.0f} ms, p90 {row['p90']:,.0f} ms, p99 {row['p99']:,.0f} ms"
                )
                yield "    p50/p99 ms of " + ", ".join(
                    f"{name} {part['p50']:,.0f}/{part['p99']:,.0f}" for name, part in row["segments"].items()
                )
                cores = row["cpu_cores"].items()
                yield "    cores used: " + ", ".join(f"{name} {used:.2f}" for name, used in cores)
                if row.get("inspected"):
                    seen = row["inspected"]
                    yield (
                        f"    deadline: inspected {seen['frames']} frames, p50 {seen['p50'] or 0:,.0f} ms, "
                        f"p99 {seen['p99'] or 0:,.0f} ms; fail-safe share {row['fail_safe_share'] or 0:.1%}"
                    )
        elif isinstance(value, float):
            yield f"{key:28s} {value:,.2f}"
        else:
            yield f"{key:28s} {value}"
    for key, op, goal in GOALS:
        if figures.get(key) is not None:
            met = figures[key] >= goal if op == ">=" else figures[key] < goal
            yield f"goal {key} {op} {goal}: {'met' if met else 'MISSED'}"
    if figures.get("p99_ms") is not None and "p99_bound_ms" in figures:
        met = figures["p99_ms"] <= figures["p99_bound_ms"]
        yield (
            f"goal p99_ms <= max_wait_ms + 2 x batch inference = {figures['p99_bound_ms']:.0f} ms: "
            f"{'met' if met else 'MISSED'}"
        )


def main() -> None:
    args = parse_args()
    figures = run(args)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for line in report(figures):
            print(line)


if __name__ == "__main__":
    main()
