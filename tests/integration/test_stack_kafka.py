"""The stack's Apache Kafka does what lineguard relies on: admin topic management, large records through a
consumer group whose committed offsets survive a restart, idempotent producers and transactions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from infra.kafka_topics import delete_topics, ensure_topics, topic_max_message_bytes
from schemas.topics import DEFAULT_MAX_MESSAGE_BYTES, TopicNames

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
GROUP_SETTINGS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def _producer(kafka_config: dict[str, Any], **overrides: Any) -> Producer:
    return Producer(
        {
            **kafka_config,
            "enable.idempotence": True,
            "message.max.bytes": topic_max_message_bytes(),
            "linger.ms": 5,
            **overrides,
        }
    )


def _consumer(kafka_config: dict[str, Any], group: str, **overrides: Any) -> Consumer:
    return Consumer(
        {
            **kafka_config,
            **GROUP_SETTINGS,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * MIB,
            "max.partition.fetch.bytes": 16 * MIB,
            "queued.max.messages.kbytes": 64 * 1024,  # bound the prefetch: 1 MiB records add up fast
            **overrides,
        }
    )


def _produce_all(
    producer: Producer, topic: str, records: Iterable[tuple[bytes, bytes]], **kwargs: Any
) -> int:
    """Produce and flush; returns how many were delivered, failing the test on any delivery error."""
    errors: list[KafkaError] = []
    delivered = 0

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        nonlocal delivered
        if error is not None:
            errors.append(error)
        else:
            delivered += 1

    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry this record
                producer.poll(0.5)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    return delivered


def _check(message: Message | None) -> Message | None:
    if message is not None and message.error() is not None:
        raise KafkaException(message.error())
    return message


def _position(message: Message) -> tuple[int, int, int]:
    """(partition, offset, record number from the key) of a consumed record."""
    partition, offset, key = message.partition(), message.offset(), message.key()
    assert partition is not None and offset is not None and key is not None
    return partition, offset, int(key)


def _value(message: Message) -> bytes:
    value = message.value()
    assert value is not None
    return value


def test_topics_are_created_with_frame_sized_limits_and_deleted(kafka_config: dict[str, Any]) -> None:
    name = f"test.admin.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka_config)

    assert ensure_topics(kafka_config, [name], partitions=3) == [name]
    assert ensure_topics(kafka_config, [name], partitions=3) == []  # idempotent
    try:
        assert len(admin.list_topics(timeout=10).topics[name].partitions) == 3
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        configs = admin.describe_configs([resource])[resource].result(timeout=10)
        assert int(configs["max.message.bytes"].value) > DEFAULT_MAX_MESSAGE_BYTES
    finally:
        delete_topics(kafka_config, [name])

    assert name not in admin.list_topics(timeout=10).topics


def test_large_records_through_a_group_resume_from_committed_offsets(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    total, first_share = 1000, 400
    payload = bytes(range(256)) * (MIB // 256)  # 1 MiB; the key tells the records apart
    producer = _producer(kafka_config, **{"queue.buffering.max.kbytes": 256 * 1024})
    delivered = _produce_all(producer, topics.frames, ((str(n).encode(), payload) for n in range(total)))
    assert delivered == total

    group = f"test-group-{uuid.uuid4().hex[:8]}"
    seen: list[int] = []

    # First consumer: process `first_share` records, commit exactly those, leave the group.
    first = _consumer(kafka_config, group)
    first.subscribe([topics.frames])
    next_offsets: dict[int, int] = {}
    deadline = time.monotonic() + 120
    while len(seen) < first_share:
        assert time.monotonic() < deadline, f"first consumer got only {len(seen)} records"
        for message in first.consume(num_messages=50, timeout=1.0):
            _check(message)
            if len(seen) == first_share:
                break
            assert message.value() == payload
            partition, offset, number = _position(message)
            seen.append(number)
            next_offsets[partition] = offset + 1
    committed = [TopicPartition(topics.frames, p, o) for p, o in next_offsets.items()]
    first.commit(offsets=committed, asynchronous=False)
    first.close()

    # Second consumer in the same group: starts where the first committed, and finishes the topic.
    second = _consumer(kafka_config, group)
    second.subscribe([topics.frames])
    first_offset_seen: dict[int, int] = {}
    distinct = set(seen)
    last_progress = time.monotonic()
    while len(distinct) < total:
        # On a badly overloaded machine a heartbeat can miss the 6 s session timeout; the group then
        # rebalances and redelivers from the committed offsets. Wait that out instead of calling it a stall.
        assert time.monotonic() - last_progress < 120, f"stalled after {len(distinct)} records"
        for message in second.consume(num_messages=min(50, total - len(distinct)), timeout=2.0):
            _check(message)
            partition, offset, number = _position(message)
            first_offset_seen.setdefault(partition, offset)
            distinct.add(number)
            last_progress = time.monotonic()
    second.close()

    assert distinct == set(range(total))  # nothing lost across the restart
    # ...and the restarted consumer resumed exactly at the committed offsets, not at the beginning
    for partition, offset in next_offsets.items():
        assert first_offset_seen.get(partition, offset) == offset


def test_idempotent_producer_requires_acks_all_and_delivers_each_record_once(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    with pytest.raises(KafkaException):
        Producer({**kafka_config, "enable.idempotence": True, "acks": "1"})

    producer = _producer(kafka_config, acks="all", **{"max.in.flight.requests.per.connection": 5})
    assert _produce_all(producer, topics.results, ((b"cam-1", f"{n}".encode()) for n in range(300))) == 300

    values = _read_partition_values(kafka_config, topics.results, "read_committed", lambda v: v == b"299")
    assert values == [str(n).encode() for n in range(300)]  # one key, one partition: in order, no duplicate


def _read_partition_values(
    kafka_config: dict[str, Any], topic: str, isolation: str, stop: Any, partitions: int = 3
) -> list[bytes]:
    """All values of the topic's partitions from the start, until `stop(value)` is true."""
    consumer = _consumer(kafka_config, f"reader-{uuid.uuid4().hex[:8]}", **{"isolation.level": isolation})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    try:
        while True:
            message = _check(consumer.poll(10.0))
            assert message is not None, f"no record after {values[-3:]}"
            values.append(_value(message))
            if stop(values[-1]):
                return values
    finally:
        consumer.close()


def test_read_committed_sees_committed_transactions_but_not_aborted(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    producer = _producer(kafka_config, **{"transactional.id": f"test-tx-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)

    def transaction(values: list[bytes], commit: bool) -> None:
        producer.begin_transaction()
        for value in values:
            producer.produce(topics.defect_events, key=b"line-1", value=value, partition=0)
        # Flush first: librdkafka purges still-queued records on abort, and the point is that records
        # the broker *did* receive stay invisible to read_committed readers.
        assert producer.flush(30) == 0
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)

    transaction([b"committed-1", b"committed-2"], commit=True)
    transaction([b"aborted-1", b"aborted-2"], commit=False)
    transaction([b"end"], commit=True)

    def read(isolation: str) -> list[bytes]:
        return _read_partition_values(kafka_config, topics.defect_events, isolation, lambda v: v == b"end")

    committed, everything = read("read_committed"), read("read_uncommitted")

    assert committed == [b"committed-1", b"committed-2", b"end"]
    assert everything == [b"committed-1", b"committed-2", b"aborted-1", b"aborted-2", b"end"]
