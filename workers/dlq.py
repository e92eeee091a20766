"""Reading and replaying the dead-letter topic (``lineguard dlq inspect`` / ``lineguard dlq replay``).

Both read the topic from the beginning with a throw-away consumer that never commits, so inspecting does
not disturb anything. Replay re-publishes the *original* key, value and headers to the frames topic: after
the cause is fixed (a model that now accepts a size, a claim-check store back online) the records flow
through the normal pipeline, and idempotent sinks mean a record replayed twice still has one document.
A dead letter that carries no original value (the record was too large to carry) is never replayed as a
null record: the report names it and says where the original may still be.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

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
    # Why the list is not the whole topic: None when every partition was read to its end; "limit" when
    # ``limit`` letters were read first; "timeout" when some partition had not reached its end in time.
    partial: str | None = None
    unfinished: tuple[int, ...] = ()  # partitions not read to their end (partial == "timeout")

    @property
    def complete(self) -> bool:
        return self.partial is None

    def by_reason(self) -> Counter[DeadLetterReason]:
        return Counter(stored.letter.reason for stored in self.letters)


def scan_dead_letters(
    kafka_config: dict[str, Any], topic: str, limit: int | None = None, timeout_s: float = 30.0
) -> DeadLetterScan:
    """Every committed dead letter on ``topic`` up to its current end (or the first ``limit`` of them).

    The end of a partition is where the consumer says it is (``PARTITION_EOF``): the last stable offset under
    ``read_committed``, past any transaction markers. The high watermark alone is not: when the worker runs
    with exactly-once, the last offset of a partition is a commit marker no consumer ever receives, so
    "the record before the high watermark" never arrives and the scan would run into its timeout. A scan that
    does run out of time says so (``partial``) instead of returning a silently short list.
    """
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
        starts: dict[int, int] = {}
        for partition in described.partitions:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
            except KafkaException as exc:
                raise ServiceUnavailableError(f"cannot read the end of {topic}: {exc.args[0].str()}") from exc
            if high > low:
                starts[partition] = low  # not 0: below the low watermark the consumer would jump to the end
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        remaining = set(starts)
        deadline = time.monotonic() + timeout_s
        # One letter past the limit tells "the topic holds more" from "exactly the limit".
        while remaining and time.monotonic() < deadline and (limit is None or len(letters) <= limit):
            for message in consumer.consume(500, timeout=0.5):
                partition, offset, error = message.partition(), message.offset(), message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(partition)
                    continue
                if partition is None or offset is None:
                    continue
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
    why_partial = None
    if limit is not None and len(letters) > limit:
        why_partial = "limit"
        letters = letters[:limit]
    elif remaining:
        why_partial = "timeout"
    return DeadLetterScan(
        letters=letters,
        unreadable=unreadable,
        partial=why_partial,
        unfinished=tuple(sorted(remaining)) if why_partial == "timeout" else (),
    )


def selector(
    reasons: Iterable[DeadLetterReason] = (), source_partition: int | None = None
) -> Callable[[StoredDeadLetter], bool]:
    wanted = set(reasons)

    def select(stored: StoredDeadLetter) -> bool:
        if wanted and stored.letter.reason not in wanted:
            return False
        return source_partition is None or stored.letter.source.partition == source_partition

    return select


@dataclass(frozen=True, slots=True)
class NotReplayed:
    stored: StoredDeadLetter
    why: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    delivered: int
    not_replayed: list[NotReplayed]  # skipped (nothing to replay) or not delivered, each with the reason

    @property
    def clean(self) -> bool:
        return not self.not_replayed


def replay_problem(letter: DeadLetter) -> str | None:
    """Why a dead letter cannot be replayed, or None. A dead letter whose original was too large to carry
    holds no value: publishing it would put a null record (a tombstone) on the frames topic and call it a
    replay."""
    if letter.original_value is not None:
        return None
    source = letter.source
    return (
        "its original value was left out of the dead letter (the record was above the size bound); the "
        f"original may still be at {source.topic}[{source.partition}]@{source.offset} until retention"
    )


def replay(
    kafka_config: dict[str, Any], letters: Iterable[StoredDeadLetter], frames_topic: str
) -> ReplayReport:
    """Re-publish the original records to ``frames_topic``; never a null record. Raises
    :class:`ServiceUnavailableError` when the broker does not acknowledge within a minute."""
    producer = Producer({**kafka_config, "enable.idempotence": True, "acks": "all"})
    not_replayed: list[NotReplayed] = []
    delivered = 0

    def on_delivery(stored: StoredDeadLetter, error: KafkaError | None, _message: Message) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1
        else:
            not_replayed.append(NotReplayed(stored, f"not delivered: {error.str()}"))

    for stored in letters:
        letter = stored.letter
        problem = replay_problem(letter)
        if problem is not None:
            not_replayed.append(NotReplayed(stored, problem))
            continue
        headers: list[tuple[str, str | bytes | None]] = [(h.key, h.value) for h in letter.original_headers]
        try:
            producer.produce(
                frames_topic,
                key=letter.original_key,
                value=letter.original_value,
                headers=headers,
                on_delivery=partial(on_delivery, stored),
            )
        except (KafkaException, BufferError) as exc:
            not_replayed.append(NotReplayed(stored, f"not produced: {exc}"))
            continue
        producer.poll(0)
    left = producer.flush(60)
    if left:
        raise ServiceUnavailableError(
            f"replay incomplete: {left} records still unacknowledged after 60 s ({delivered} delivered)"
        )
    not_replayed.sort(key=lambda item: (item.stored.partition, item.stored.offset))
    return ReplayReport(delivered=delivered, not_replayed=not_replayed)
