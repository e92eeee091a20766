"""The serde through a real Kafka broker, plugged into confluent-kafka's SerializingProducer and
DeserializingConsumer: the contract the producers and workers rely on, in both wire formats."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from confluent_kafka import DeserializingConsumer, SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import StringDeserializer, StringSerializer

from schemas.records import Frame
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from schemas.topics import TopicNames
from tests.unit.golden.records import golden_frame

pytestmark = pytest.mark.integration

FRAME_COUNT = 20


def _frames() -> list[Frame]:
    base = golden_frame()
    return [
        dataclasses.replace(base, camera_id=f"cam-{n % 3}", frame_number=n, image=bytes([n]) * (1000 + n))
        for n in range(FRAME_COUNT)
    ]


def _round_trip(
    kafka_config: dict[str, Any], topic: str, registry: SchemaRegistryClient | None
) -> list[Frame]:
    producer = SerializingProducer(
        {
            **kafka_config,
            "enable.idempotence": True,
            "key.serializer": StringSerializer(),
            "value.serializer": AvroRecordSerializer(Frame, registry),
        }
    )
    for frame in _frames():
        producer.produce(topic, key=frame.camera_id, value=frame)
    assert producer.flush(30) == 0

    consumer = DeserializingConsumer(
        {
            **kafka_config,
            "group.id": f"test-serde-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "key.deserializer": StringDeserializer(),
            "value.deserializer": AvroRecordDeserializer(Frame, registry),
        }
    )
    received: list[Frame] = []
    try:
        consumer.subscribe([topic])
        for _ in range(300):
            if len(received) == FRAME_COUNT:
                break
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value = message.value()
            assert isinstance(value, Frame)
            assert message.key() == value.camera_id
            received.append(value)
    finally:
        consumer.close()
    return received


def _ordered(frames: list[Frame]) -> list[Frame]:
    return sorted(frames, key=lambda frame: frame.identity)


def test_single_object_frames_round_trip_through_kafka(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    received = _round_trip(kafka_config, topics.frames, registry=None)

    assert _ordered(received) == _ordered(_frames())


def test_registry_framed_frames_round_trip_through_kafka(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://integration"})

    received = _round_trip(kafka_config, topics.frames, registry)

    assert _ordered(received) == _ordered(_frames())
    assert registry.get_subjects() == [f"{topics.frames}-value"]
