"""Workers read Confluent-framed frames when a schema registry is configured (compose's default)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.records import Frame, ImageEncoding
from schemas.serde import AvroRecordSerializer, schema_registry_client
from workers.serving import frame_deserializer


def test_the_workers_deserializer_follows_the_registry_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = Frame(
        camera_id="cam-1",
        line_id="line-1",
        station_id="st",
        frame_number=7,
        captured_at=datetime.now(UTC),
        width=2,
        height=2,
        channels=1,
        encoding=ImageEncoding.PNG,
        image=b"png",
    )
    monkeypatch.setenv("LINEGUARD_SCHEMA_REGISTRY_URL", "mock://workers-registry-frames")
    registry = schema_registry_client("mock://workers-registry-frames")
    asked: list[str | None] = []

    def same_registry(url: str | None, auth: str | None = None) -> object:
        asked.append(url)  # mock:// registries do not share state between clients: hand over this one
        return registry if url else None

    monkeypatch.setattr("workers.serving.schema_registry_client", same_registry)
    framed = AvroRecordSerializer(Frame, registry)(frame, SerializationContext("frames", MessageField.VALUE))
    assert framed[0] == 0  # Confluent framing: magic byte 0 + schema id
    assert frame_deserializer()(framed) == frame
    assert asked == ["mock://workers-registry-frames"]
    monkeypatch.delenv("LINEGUARD_SCHEMA_REGISTRY_URL")
    assert frame_deserializer()(AvroRecordSerializer(Frame)(frame)) == frame  # single-object, no registry
