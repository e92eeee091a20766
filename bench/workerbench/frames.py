"""The benchmark's frames: synthetic JPEGs cached once, Avro Frame records from them, backlog publishing."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infra.settings import default_cache_dir
from lineguard.demo.tally import DemoTally
from schemas.records import Frame, GroundTruth, ImageEncoding
from schemas.serde import AvroRecordSerializer
from workerbench.common import (
    CAMERAS,
    say,
)


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
