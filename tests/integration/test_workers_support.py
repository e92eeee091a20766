"""Helpers for the workers' integration tests (no tests here): a small real model, frames, produce, read back.

The model is :func:`chaos.model.train_small_classifier` (the fault harness serves it too): a genuine
Keras classifier trained for a few epochs on synthetic defect frames and exported to ONNX, so the worker runs
the same code path as with a shipped model (never a stub returning constants).
Frames are 128x128 JPEGs so the suite stays fast.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.records import Frame, GroundTruth, ImageEncoding
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from schemas.topics import TopicNames

FRAME_SIZE = 128
TEST_SESSION_TIMEOUT_MS = 6000
REPO_ROOT = Path(__file__).resolve().parents[2]

R = TypeVar("R")


def make_frames(
    count: int, cameras: Sequence[str] = ("cam-a", "cam-b", "cam-c"), seed: int = 11
) -> list[Frame]:
    """``count`` synthetic JPEG frames spread over ``cameras`` (frame numbers increase per camera)."""
    import cv2

    from vision.synthetic import SyntheticDefectGenerator

    generator = SyntheticDefectGenerator(width=FRAME_SIZE, height=FRAME_SIZE, defect_rate=0.4, seed=seed)
    frames = []
    for index in range(count):
        sample = generator.generate(index)
        assert sample.image is not None
        ok, jpeg = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        camera = cameras[index % len(cameras)]
        frames.append(
            Frame(
                camera_id=camera,
                line_id="line-1",
                station_id="station-1",
                frame_number=index // len(cameras),
                captured_at=datetime.now(UTC),
                width=FRAME_SIZE,
                height=FRAME_SIZE,
                channels=3,
                encoding=ImageEncoding.JPEG,
                image=jpeg.tobytes(),
                ground_truth=GroundTruth(labels=(sample.label,) if sample.label != "good" else ()),
            )
        )
    return frames


def produce(
    kafka_config: dict[str, Any], topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Publish raw (key, value) pairs and wait for every delivery; returns how many were sent."""
    producer = Producer({**kafka_config, "enable.idempotence": True, "linger.ms": 5})
    errors: list[str] = []
    count = 0
    for key, value in records:
        producer.produce(
            topic,
            key=key,
            value=value,
            on_delivery=lambda err, _msg: errors.append(err.str()) if err else None,
        )
        count += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors
    return count


def produce_frames(kafka_config: dict[str, Any], topic: str, frames: Iterable[Frame]) -> int:
    serializer = AvroRecordSerializer(Frame)
    return produce(kafka_config, topic, ((f.camera_id.encode(), serializer(f)) for f in frames))


def read_topic(
    kafka_config: dict[str, Any],
    topic: str,
    decode: Callable[[bytes], R],
    expected: int,
    timeout_s: float = 60.0,
    read_committed: bool = True,
    settle_s: float = 1.0,
) -> list[R]:
    """Everything on ``topic`` from the beginning, waiting until at least ``expected`` records arrived (and
    ``settle_s`` more, so extra records such as duplicates are seen too)."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"reader-{topic}-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    consumer.assign(partitions)
    records: list[R] = []
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.2):
                if message.error() is None:
                    records.append(decode(message.value()))
            if len(records) >= expected:
                settle_until = settle_until or time.monotonic() + settle_s
                if time.monotonic() >= settle_until:
                    break
    finally:
        consumer.close()
    return records


def decoder(record_cls: type[R]) -> Callable[[bytes], R]:
    deserializer = AvroRecordDeserializer(record_cls)  # type: ignore[type-var]

    def decode(value: bytes) -> R:
        record = deserializer(value)
        assert record is not None
        return record  # type: ignore[return-value]

    return decode


def committed_offsets(kafka_config: dict[str, Any], group: str, topic: str) -> dict[int, int]:
    """Committed position per partition; partitions never committed count as 0 (Kafka says -1001)."""
    consumer = Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10)}
    finally:
        consumer.close()


def end_offsets(kafka_config: dict[str, Any], topic: str) -> dict[int, int]:
    """High watermark per partition."""
    consumer = Consumer({**kafka_config, "group.id": "watermarks", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.topics[topic].partitions
        }
    finally:
        consumer.close()


def worker_env(
    endpoints: Any, mongo_database: str, topics: TopicNames, group: str, model: Path
) -> dict[str, str]:
    """Environment for a worker subprocess (settings come from LINEGUARD_WORKER_* like in production)."""
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
            "MONGODB_URI": endpoints.mongodb_uri,
            "LINEGUARD_MONGODB_DATABASE": mongo_database,
            "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
            "LINEGUARD_WORKER_RESULTS_TOPIC": topics.results,
            "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": topics.defect_events,
            "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": topics.dead_letters,
            "LINEGUARD_WORKER_GROUP_ID": group,
            "LINEGUARD_WORKER_MODEL": str(model),
            "LINEGUARD_WORKER_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
            "LINEGUARD_WORKER_MAX_BATCH_SIZE": "8",
            "LINEGUARD_WORKER_MAX_WAIT_MS": "20",
            "LINEGUARD_WORKER_DECODE_THREADS": "2",
            "LINEGUARD_WORKER_INFERENCE_THREADS": "1",
            "LINEGUARD_WORKER_COMMIT_INTERVAL_MS": "200",
        }
    )
    return env


def start_worker(
    env: dict[str, str], *extra_args: str, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m workers`` as a subprocess (so it can be SIGKILLed like a crashed pod)."""
    stderr: Any = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "workers", *extra_args],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def terminate(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=timeout_s)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def cached_test_model(base: Path) -> Path:
    """The test model, trained once per test session under ``base`` (pytest's basetemp)."""
    from chaos.model import train_small_classifier

    directory = base / "workers-test-model"
    if not (directory / "model.json").exists():
        train_small_classifier(directory)
    return directory
