"""The pieces of the capture -> PLC benchmark: parts of three views published by the camera publisher
(streams), the `lineguard parts` and `lineguard plc` subprocesses, a watch on the results topic, and the
part decisions read back afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from lineguard.stack.endpoints import Endpoints
from schemas.parts import PartDecision
from schemas.records import Frame, GroundTruth, ImageEncoding, InspectionResult
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from streams.publisher import FramePublisher, PublisherOptions
from workerbench.common import CAMERAS, REPO_ROOT
from workerbench.frames import EncodedFrame

LINE = "bench-line"


class PartCamera:
    """Three cameras looking at the same part: each part is three frames with one ``part_id`` and one capture
    time, sent back to back by the streams camera publisher (its idempotent producer, headers, traces)."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, frames: list[EncodedFrame]) -> None:
        self._frames = frames
        self._publisher = FramePublisher(
            PublisherOptions(topic=topic), kafka_config, AvroRecordSerializer(Frame)
        )
        self._next = 0
        self._base = time.time_ns() // 1000  # frame numbers keep growing across runs, like a camera's
        self.captured: dict[str, float] = {}  # part id -> capture time (epoch s)

    def publish_part(self, prefix: str) -> str:
        part = f"{prefix}-{self._next:06d}"
        captured = datetime.now(UTC)
        for camera in CAMERAS:
            source = self._frames[self._next % len(self._frames)]
            self._publisher.publish(
                Frame(
                    camera_id=camera,
                    line_id=LINE,
                    station_id="bench-station",
                    frame_number=self._base + self._next,
                    captured_at=captured,
                    width=1280,
                    height=1024,
                    channels=3,
                    encoding=ImageEncoding.JPEG,
                    image=source.jpeg,
                    ground_truth=GroundTruth(labels=source.labels),
                    part_id=part,
                )
            )
            self._next += 1
        self.captured[part] = captured.timestamp()
        self._publisher.poll(0)
        return part

    def paced(self, prefix: str, parts_per_s: float, seconds: float) -> list[str]:
        """Publish parts at ``parts_per_s`` for ``seconds``; returns their ids."""
        period = 1.0 / parts_per_s
        sent = []
        next_at = time.monotonic()
        for _ in range(max(1, int(parts_per_s * seconds))):
            while (delay := next_at - time.monotonic()) > 0:
                self._publisher.poll(min(delay, 0.005))
            next_at += period
            sent.append(self.publish_part(prefix))
        self.flush()
        return sent

    def flush(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._publisher.in_flight > 0 and time.monotonic() < deadline:
            self._publisher.poll(0.05)

    def close(self) -> None:
        self._publisher.close(30)


@dataclass
class ResultWatch:
    """Every result on the results topic: (part, camera) -> (result record's Kafka timestamp, fail-safe)."""

    kafka_config: dict[str, Any]
    topic: str
    seen: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ResultWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        read = AvroRecordDeserializer(InspectionResult)
        consumer = Consumer(
            {
                **self.kafka_config,
                "group.id": f"bench-watch-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                for message in consumer.consume(500, 0.1):
                    if message.error() is not None:
                        continue
                    result = read(message.value(), None)
                    if result is not None and result.part_id is not None:
                        stamp = message.timestamp()[1] / 1000.0
                        self.seen[(result.part_id, result.camera_id)] = (stamp, bool(result.deadline_missed))
        finally:
            consumer.close()

    def count(self, parts: list[str]) -> int:
        return sum(1 for part in parts for camera in CAMERAS if (part, camera) in self.seen)

    def rate_between(self, start: float, end: float) -> float:
        """Results per second whose record was written in [start, end] (epoch s)."""
        inside = sum(1 for stamp, _ in list(self.seen.values()) if start <= stamp <= end)
        return inside / (end - start) if end > start else 0.0

    def first_last(self, parts: list[str]) -> tuple[float, float]:
        stamps = [self.seen[(p, c)][0] for p in parts for c in CAMERAS if (p, c) in self.seen]
        return min(stamps), max(stamps)


def read_decisions(kafka_config: dict[str, Any], topic: str) -> dict[str, PartDecision]:
    """All part decisions on the topic (the first per part), read from the beginning."""
    read = AvroRecordDeserializer(PartDecision)
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"bench-decisions-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    decisions: dict[str, PartDecision] = {}
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 5:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:  # partition EOF among them: keep reading until idle
                continue
            idle_since = time.monotonic()
            decision = read(message.value(), None)
            if decision is not None:
                decisions.setdefault(decision.part_id, decision)
    finally:
        consumer.close()
    return decisions


class Service:
    """A ``lineguard <command>`` subprocess on the bench's endpoints and database, logging to ``log_dir``."""

    def __init__(self, args: list[str], endpoints: Endpoints, database: str, log_dir: Path) -> None:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
                "MONGODB_URI": endpoints.mongodb_uri,
                "LINEGUARD_MONGODB_DATABASE": database,
            }
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = args[0]
        self.log_path = log_dir / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "lineguard"), *args],
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"lineguard {self.name} exited ({self.process.returncode}); see {self.log_path}"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
