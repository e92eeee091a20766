"""Kafka from the outside: produce raw records and learn where they landed, read whole topics back.

The harnesses audit the product as a downstream consumer would, so they use plain confluent-kafka clients
and never the worker's own code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from schemas.errors import ServiceUnavailableError

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Landed:
    """Where a produced record was stored."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def payload(self) -> bytes:
        """The value, with a tombstone read as empty bytes (which no deserializer accepts)."""
        return self.value or b""


def produce_all(
    kafka_config: dict[str, Any],
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, Headers]],
    timeout_s: float = 120.0,
) -> list[Landed]:
    """Produce every (key, value, headers) and wait for all deliveries; returns their coordinates in order."""
    producer = Producer(
        {**kafka_config, "enable.idempotence": True, "linger.ms": 5, "message.max.bytes": 16 * 1024 * 1024}
    )
    landed: dict[int, Landed] = {}
    errors: list[str] = []

    def on_delivery(index: int) -> Any:
        def report(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                errors.append(error.str())
            else:
                landed[index] = Landed(message.partition(), message.offset())

        return report

    count = 0
    for index, (key, value, headers) in enumerate(records):
        while True:
            try:
                producer.produce(
                    topic, key=key, value=value, headers=list(headers), on_delivery=on_delivery(index)
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        count = index + 1
    remaining = producer.flush(timeout_s)
    if remaining or errors:
        raise ServiceUnavailableError(
            f"{remaining} records undelivered, {len(errors)} failed: {'; '.join(errors[:3])}"
        )
    return [landed[index] for index in range(count)]


class TopicReader:
    """Reads a topic from the beginning, incrementally: call :meth:`poll` repeatedly, records accumulate."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, read_committed: bool = True) -> None:
        self.topic = topic
        self.records: list[Consumed] = []
        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"chaos-audit-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
                "receive.message.max.bytes": 80 * 1024 * 1024,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=30)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise ServiceUnavailableError(f"topic {topic} does not exist")
        self._consumer.assign([TopicPartition(topic, p, 0) for p in described.partitions])

    def poll(self, seconds: float = 1.0) -> int:
        """Read for about ``seconds``; returns how many new records arrived."""
        before = len(self.records)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self._consumer.consume(1000, timeout=0.2):
                if message.error() is not None:
                    continue
                partition, offset = message.partition(), message.offset()
                assert partition is not None and offset is not None
                raw_headers: Any = message.headers() or ()  # consumed: a list of (name, bytes | None)
                headers = tuple((name, value or b"") for name, value in raw_headers)
                self.records.append(Consumed(partition, offset, message.key(), message.value(), headers))
        return len(self.records) - before

    def read_until(self, predicate: Any, idle_timeout_s: float, settle_s: float = 2.0) -> None:
        """Poll until ``predicate(records)`` holds (then ``settle_s`` more, to see extras such as duplicates)
        or nothing new arrived for ``idle_timeout_s``."""
        last_progress = time.monotonic()
        while not predicate(self.records):
            if self.poll(1.0):
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout_s:
                return
        self.poll(settle_s)

    def close(self) -> None:
        self._consumer.close()
