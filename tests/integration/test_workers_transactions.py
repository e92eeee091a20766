"""Exactly-once output transactions under the two faults that used to stop a worker: a rebalance that
moves the group's generation under an open transaction, and a MongoDB slower than ``transaction.timeout.ms``.

The output stage (:class:`~workers.sinks.writer.OutputWriter`) runs against the real broker and MongoDB,
with real consumers in a real group, so librdkafka and the broker decide what fails; the pipeline around it
is not needed to make the faults happen at a known moment.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer
from pymongo.database import Database

from schemas.records import (
    DeadLetter,
    DeadLetterReason,
    InspectionResult,
)
from schemas.topics import TopicNames
from tests.integration.test_workers_support import committed_offsets, decoder, read_topic, wait_for
from tests.worker_batches import inferred_batch
from workers.decode import FrameRejected
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker, PartitionKey
from workers.settings import WorkerSettings
from workers.sinks.dead_letters import RawRecord
from workers.sinks.kafka import KafkaOutputs
from workers.sinks.mongo import MongoInspectionSink
from workers.sinks.writer import OutputWriter, Rejected

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_MS = 6000


def _member(kafka_config: dict[str, Any], group: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": group,
            "enable.auto.commit": False,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
        }
    )
    consumer.subscribe([topic])
    return consumer


def _sole_member(kafka_config: dict[str, Any], group: str, topic: str, members: list[Consumer]) -> Consumer:
    """A member that joins the group alone and owns all three partitions before it is returned."""
    member = _member(kafka_config, group, topic)
    members.append(member)
    wait_for(lambda: member.poll(0.1) is None and len(_owned(member)) == 3, 60, "the member's partitions")
    return member


def _owned(consumer: Consumer) -> set[PartitionKey]:
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


@pytest.fixture
def group() -> str:
    return f"txn-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def members(kafka_config: dict[str, Any]) -> Iterator[list[Consumer]]:
    consumers: list[Consumer] = []
    yield consumers
    for consumer in consumers:
        consumer.close()


def _outputs(kafka_config: dict[str, Any], topics: TopicNames, group: str, timeout_ms: int) -> KafkaOutputs:
    settings = WorkerSettings(group_id=group, exactly_once=True, transaction_timeout_ms=timeout_ms)
    return KafkaOutputs({**kafka_config, **settings.producer_config()}, topics, transactional=True)


def test_a_transaction_refused_by_a_rebalance_is_rewritten_without_the_revoked_partitions(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    group: str,
    members: list[Consumer],
) -> None:
    first = _sole_member(kafka_config, group, topics.frames, members)
    stale = first.consumer_group_metadata()
    second = _member(kafka_config, group, topics.frames)  # joins: the group moves to a new generation
    members.append(second)

    def rebalanced() -> bool:
        first.poll(0.1)
        second.poll(0.1)
        return bool(_owned(second)) and not _owned(first) & _owned(second)

    wait_for(rebalanced, 60, "the second member to get partitions")
    revoked, kept = _owned(second), _owned(first)

    tracker = OffsetTracker()
    items = [
        Rejected(
            tracker.track(topics.frames, partition, offset),
            RawRecord(topics.frames, partition, offset, None, b"key", b"not avro"),
            FrameRejected(DeadLetterReason.UNDECODABLE_RECORD, "not avro"),
        )
        for partition in range(3)
        for offset in range(2)
    ]
    metadata = {"current": stale}  # what the poll thread last saw: the old generation
    lock = threading.Lock()
    writer = OutputWriter(
        tracker,
        _outputs(kafka_config, topics, group, 15_000),
        MongoInspectionSink(mongo_db, "inspections"),
        WorkerMetrics(),
        worker_id="w1",
        max_message_bytes=1_000_000,
        group_metadata=lambda: metadata["current"],
    )

    def revoke_later() -> None:
        # What the worker's revoke does once the poll thread gets to it: release the partitions under the
        # lock (so no output of theirs is written afterwards), then the new generation becomes visible.
        time.sleep(2.0)
        with lock:
            tracker.release(revoked)
        metadata["current"] = first.consumer_group_metadata()

    revoker = threading.Thread(target=revoke_later)
    revoker.start()
    try:
        writer.write_transaction(list(items), lock, give_up=lambda: False)  # must not raise
    finally:
        revoker.join()

    kept_partitions = {partition for _, partition in kept}
    letters = read_topic(kafka_config, topics.dead_letters, decoder(DeadLetter), expected=2 * len(kept))
    assert sorted((letter.source.partition, letter.source.offset) for letter in letters) == sorted(
        (partition, offset) for partition in kept_partitions for offset in range(2)
    )
    committed = committed_offsets(kafka_config, group, topics.frames)
    assert committed == {p: 2 if p in kept_partitions else 0 for p in range(3)}


class _SlowMongo(MongoInspectionSink):
    """The real sink behind a MongoDB that answers only after ``delay_s`` (like one retried through an
    outage): the documents are still written, late."""

    def __init__(self, database: Database[dict[str, Any]], delay_s: float) -> None:
        super().__init__(database, "inspections")
        self._delay_s = delay_s

    def write_batch(self, items: Any) -> None:
        time.sleep(self._delay_s)
        super().write_batch(items)


def test_a_mongodb_slower_than_the_transaction_timeout_never_holds_a_transaction_open(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    group: str,
    members: list[Consumer],
) -> None:
    member = _sole_member(kafka_config, group, topics.frames, members)
    timeout_ms = 2_000
    # The broker aborts a transaction older than its timeout at its next expiry check (every 10 s by default),
    # then fences the producer: a MongoDB answering after that inside a transaction stops the worker.
    slow = _SlowMongo(mongo_db, delay_s=timeout_ms / 1000 + 12.0)
    tracker = OffsetTracker()
    count = 5
    writer = OutputWriter(
        tracker,
        _outputs(kafka_config, topics, group, timeout_ms),
        slow,
        WorkerMetrics(),
        worker_id="w1",
        max_message_bytes=1_000_000,
        group_metadata=member.consumer_group_metadata,
    )

    writer.write_transaction(
        [inferred_batch(tracker, topics.frames, count)], threading.Lock(), give_up=lambda: False
    )

    results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=count)
    assert sorted(result.frame_number for result in results) == list(range(count))
    assert slow.collection.count_documents({}) == count
    assert committed_offsets(kafka_config, group, topics.frames)[0] == count


def test_a_record_behind_a_gap_waits_for_the_transaction_that_commits_its_offset(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    group: str,
    members: list[Consumer],
) -> None:
    member = _sole_member(kafka_config, group, topics.frames, members)
    tracker = OffsetTracker()
    batch = inferred_batch(
        tracker, topics.frames, 2
    )  # offsets 0 and 1 of partition 0, handed over out of order
    earlier, later = (
        dataclasses.replace(batch, frames=[frame], predictions=[prediction])
        for frame, prediction in zip(batch.frames, batch.predictions, strict=True)
    )
    writer = OutputWriter(
        tracker,
        _outputs(kafka_config, topics, group, 15_000),
        MongoInspectionSink(mongo_db, "inspections"),
        WorkerMetrics(),
        worker_id="w1",
        max_message_bytes=1_000_000,
        group_metadata=member.consumer_group_metadata,
    )

    # Offset 1 alone: its offset cannot be committed while offset 0 is unwritten, so neither may its result
    # (a crash now would write it again: a duplicate under read_committed).
    writer.write_transaction([later], threading.Lock(), give_up=lambda: False)
    assert read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=1, timeout_s=3) == []

    writer.write_transaction([earlier], threading.Lock(), give_up=lambda: False)
    results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=2)
    assert sorted(result.frame_number for result in results) == [0, 1]
    assert committed_offsets(kafka_config, group, topics.frames)[0] == 2
