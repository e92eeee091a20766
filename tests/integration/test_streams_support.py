"""Helpers shared by the streams integration tests: run a camera, read the frames topic back."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from schemas.records import Frame
from schemas.serde import AvroRecordDeserializer
from streams.camera import build_camera
from streams.runner import RunSummary
from streams.settings import CameraSettings


@dataclass(frozen=True)
class Received:
    key: bytes | None
    frame: Frame
    headers: dict[str, bytes]
    partition: int
    offset: int
    value: bytes  # the record as it was on the topic


def run_camera(
    kafka_config: dict[str, Any],
    topic: str,
    source: str,
    count: int,
    tmp_path: Path,
    schema_registry: Any | None = None,
    **settings: Any,
) -> RunSummary:
    """Publish ``count`` frames from ``source`` with the same wiring `lineguard camera` uses."""
    camera = CameraSettings(
        source=source,
        camera_id=settings.pop("camera_id", "cam-it"),
        topic=topic,
        fps=0,
        count=count,
        first_frame_number=0,
        claim_check=settings.pop("claim_check", False),
        spool=settings.pop("spool", False),
        spool_dir=tmp_path / "spool",
        **settings,
    )
    runner = build_camera(
        camera, kafka_config, None, "unused", tmp_path, create_topic=False, schema_registry=schema_registry
    )
    return runner.run()


def consume_frames(
    kafka_config: dict[str, Any],
    topic: str,
    expected: int,
    timeout_s: float = 60.0,
    schema_registry: Any | None = None,
) -> list[Received]:
    """Read ``expected`` frames from the start of ``topic`` (then a short grace period to catch extras)."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"it-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    reader = AvroRecordDeserializer(Frame, schema_registry)
    received: list[Received] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        grace_until = None
        while time.monotonic() < deadline:
            if len(received) >= expected:
                grace_until = grace_until or time.monotonic() + 1.0
                if time.monotonic() > grace_until:
                    break
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value = message.value()
            assert value is not None
            frame = reader(value)
            partition, offset = message.partition(), message.offset()
            assert frame is not None and partition is not None and offset is not None
            received.append(
                Received(
                    key=message.key(),
                    frame=frame,
                    headers=_headers(message.headers()),
                    value=value,
                    partition=partition,
                    offset=offset,
                )
            )
    finally:
        consumer.close()
    return received


def _headers(raw: Any) -> dict[str, bytes]:
    """Kafka headers as a dict (the test messages never repeat a header)."""
    return {name: value for name, value in raw or []}
