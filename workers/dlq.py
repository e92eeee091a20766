"""Reading and replaying the dead-letter topic (``lineguard dlq inspect`` / ``lineguard dlq replay``).

Both read the topic from the beginning with a throw-away consumer that never commits, so inspecting does
not disturb anything. Replay re-publishes the *original* key, value and headers to the frames topic: after
the cause is fixed (a model that now accepts a size, a claim-check store back online) the records flow
through the normal pipeline, and idempotent sinks mean a record replayed twice still has one document.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from schemas.errors import SerializationError, ServiceUnavailableError
from schemas.records import DeadLetter, DeadLetterReason
from schemas.serde import AvroRecordDeserializer


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter and where it sits in the dead-letter topic."""

    partition: int
    offset: int
    letter: DeadLetter


@dataclass(frozen=True, slots=True)
class DeadLetterScan:
    letters: list[StoredDeadLetter]
    unreadable: int  # records on the topic that are not dead letters (never expected; counted, not hidden)

    def by_reason(self) -> Counter[DeadLetterReason]:
        return Counter(stored.letter.reason for stored in self.letters)


def scan_dead_letters(
    kafka_config: dict[str, Any], topic: str, limit: int | None = None, timeout_s: float = 30.0
) -> DeadLetterScan:
    """Every dead letter on ``topic`` up to its current end (or ``limit`` of them)."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"lineguard-dlq-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    deserializer = AvroRecordDeserializer(DeadLetter)
    letters: list[StoredDeadLetter] = []
    unreadable = 0
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:
            raise ServiceUnavailableError(f"cannot read Kafka metadata: {exc.args[0].str()}") from exc
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise ServiceUnavailableError(f"dead-letter topic {topic!r} does not exist")
        ends: dict[int, int] = {}
        for partition in described.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        remaining = dict(ends)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline and (limit is None or len(letters) < limit):
            for message in consumer.consume(500, timeout=0.5):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if offset + 1 >= remaining.get(partition, 0):
                    remaining.pop(partition, None)
                try:
                    letter = deserializer(message.value())
                except SerializationError:
                    unreadable += 1
                    continue
                if letter is not None:
                    letters.append(StoredDeadLetter(partition, offset, letter))
    finally:
        consumer.close()
    letters.sort(key=lambda stored: (stored.partition, stored.offset))
    return DeadLetterScan(letters=letters[:limit] if limit is not None else letters, unreadable=unreadable)


def selector(
    reasons: Iterable[DeadLetterReason] = (), source_partition: int | None = None
) -> Callable[[StoredDeadLetter], bool]:
    wanted = set(reasons)

    def select(stored: StoredDeadLetter) -> bool:
        if wanted and stored.letter.reason not in wanted:
            return False
        return source_partition is None or stored.letter.source.partition == source_partition

    return select


def replay(kafka_config: dict[str, Any], letters: Iterable[StoredDeadLetter], frames_topic: str) -> int:
    """Re-publish the original records to ``frames_topic``; returns how many were delivered."""
    producer = Producer({**kafka_config, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []
    sent = 0

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    for stored in letters:
        letter = stored.letter
        headers: list[tuple[str, str | bytes | None]] = [(h.key, h.value) for h in letter.original_headers]
        producer.produce(
            frames_topic,
            key=letter.original_key,
            value=letter.original_value,
            headers=headers,
            on_delivery=on_delivery,
        )
        sent += 1
        producer.poll(0)
    if producer.flush(60) or failures:
        raise ServiceUnavailableError(
            f"replay incomplete: {len(failures)} of {sent} records not delivered ({'; '.join(failures[:3])})"
        )
    return sent
