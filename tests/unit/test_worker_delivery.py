"""The worker's commit and delivery logic, in both modes, on stand-in Kafka clients.

The parts are the worker's own (``FrameConsumer``, ``KafkaOutputs``, ``OutputWriter``, ``OffsetTracker``),
built with the factories :mod:`workers.assemble` injects; only the confluent-kafka clients are stand-ins that
record what was produced and committed, and deliver (or fail) on ``poll``. Dead letters travel the same
settle -> produce -> acknowledge -> commit path as results, so they carry the records here. The real-broker
counterparts are tests/integration/test_workers_delivery.py and test_workers_transactions.py.

At least once: an offset is committed only once every output of every record before it was acknowledged,
never past a record still in flight, and never for a record whose delivery failed. Exactly once: outputs and
offsets go into one transaction, a record behind a gap waits for the next one, and an aborted transaction
commits nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from schemas.records import DeadLetterReason, InspectionResult
from schemas.topics import TopicNames
from workers.consumer import FrameConsumer
from workers.decode import FrameRejected
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker, PartitionKey, Ticket
from workers.sinks.dead_letters import RawRecord
from workers.sinks.kafka import DeliveryFailed, KafkaOutputs, TransactionAborted
from workers.sinks.writer import ABORTED_ATTEMPTS, OutputWriter, Rejected

FRAMES = "frames"
TOPICS = TopicNames.with_prefix("delivery")


class _Delivered:
    """What a delivery report's ``message`` argument offers the outputs."""

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeProducer:
    """Queues produced records; ``poll``/``flush`` deliver them, failing those whose key is in ``fail_keys``.

    Transactional calls are recorded in ``calls``; ``commit_error`` makes every commit_transaction raise it.
    """

    def __init__(self, fail_keys: set[bytes], commit_error: KafkaError | None) -> None:
        self.calls: list[str] = []
        self.produced: list[tuple[str, bytes]] = []  # (topic, key) in produce order
        self.sent_offsets: list[list[tuple[str, int, int]]] = []
        self._pending: list[tuple[str, bytes, Any]] = []
        self._fail_keys = fail_keys
        self._commit_error = commit_error

    def produce(
        self, topic: str, value: Any = None, key: Any = None, *, on_delivery: Any = None, headers: Any = None
    ) -> None:
        self.produced.append((topic, key))
        self._pending.append((topic, key, on_delivery))

    def poll(self, timeout: float = -1) -> int:
        served, self._pending = self._pending, []
        for topic, key, callback in served:
            if callback is not None:
                error = KafkaError(KafkaError._MSG_TIMED_OUT, "stand-in") if key in self._fail_keys else None
                callback(error, _Delivered(topic))
        return len(served)

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return 0

    def init_transactions(self, timeout: float = -1) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], metadata: Any, timeout: float = -1
    ) -> None:
        self.calls.append("send_offsets")
        self.sent_offsets.append([(tp.topic, tp.partition, tp.offset) for tp in positions])

    def commit_transaction(self, timeout: float = -1) -> None:
        self.calls.append("commit")
        if self._commit_error is not None:
            raise KafkaException(self._commit_error)

    def abort_transaction(self, timeout: float = -1) -> None:
        self.calls.append("abort")


class FakeConsumer:
    """Records synchronous commits (all the at-least-once path asks of the consumer here)."""

    def __init__(self) -> None:
        self.committed: list[list[tuple[str, int, int]]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        self.committed.append(sorted((tp.topic, tp.partition, tp.offset) for tp in offsets))
        return offsets

    def close(self) -> None:
        return None


class MemoryInspectionSink:
    """In-memory stand-in for the MongoDB sink: the transactional path writes documents before it begins."""

    def __init__(self) -> None:
        self.written: list[InspectionResult] = []

    def write_batch(self, items: Sequence[InspectionResult]) -> None:
        self.written.extend(items)

    def flush(self, timeout_s: float) -> None:
        return None

    def close(self) -> None:
        return None


class _Listener:
    def partitions_assigned(self, keys: list[PartitionKey]) -> None:
        return None

    def partitions_revoked(self, keys: list[PartitionKey], lost: bool) -> None:
        return None


class Rig:
    """Tracker, consumer, outputs and writer wired as :func:`workers.assemble.assemble` wires them."""

    def __init__(
        self,
        *,
        exactly_once: bool,
        fail_keys: Collection[bytes] = (),
        commit_error: KafkaError | None = None,
    ) -> None:
        self.tracker = OffsetTracker()
        metrics = WorkerMetrics()
        self.kafka_consumer = FakeConsumer()
        self.producer = FakeProducer(set(fail_keys), commit_error)

        def consumer_factory(config: dict[str, Any]) -> Any:
            return self.kafka_consumer

        def producer_factory(config: dict[str, Any]) -> Any:
            return self.producer

        self.consumer = FrameConsumer(
            {},
            FRAMES,
            self.tracker,
            lambda message, ticket: None,
            _Listener(),
            metrics,
            max_in_flight=64,
            commit_offsets=not exactly_once,
            consumer_factory=consumer_factory,
        )
        self.outputs = KafkaOutputs({}, TOPICS, transactional=exactly_once, producer_factory=producer_factory)
        self.mongo = MemoryInspectionSink()
        self.writer = OutputWriter(
            self.tracker,
            self.outputs,
            self.mongo,
            metrics,
            worker_id="worker-test",
            max_message_bytes=1_000_000,
            group_metadata=lambda: "group-metadata",
            rebalance_retry_s=0.0,
        )
        self.tickets: dict[tuple[int, int], Ticket] = {}

    def receive(self, partition: int, *offsets: int) -> None:
        """What the poll thread does with each record: track it."""
        for offset in offsets:
            self.tickets[(partition, offset)] = self.tracker.track(FRAMES, partition, offset)

    def rejected(self, partition: int, offset: int) -> Rejected:
        record = RawRecord(FRAMES, partition, offset, None, key(partition, offset), b"\x00garbage")
        error = FrameRejected(DeadLetterReason.UNDECODABLE_RECORD, "not an Avro frame")
        return Rejected(self.tickets[(partition, offset)], record, error)

    def write(self, partition: int, *offsets: int) -> None:
        """At least once: the sink thread writes each record's dead letter."""
        for offset in offsets:
            self.writer.write(self.rejected(partition, offset), give_up=lambda: False)

    def transaction(
        self, records: list[tuple[int, int]], give_up: Callable[[], bool] = lambda: False
    ) -> None:
        items = [self.rejected(partition, offset) for partition, offset in records]
        self.writer.write_transaction(list(items), threading.Lock(), give_up=give_up)


def key(partition: int, offset: int) -> bytes:
    return f"cam-{partition}-{offset}".encode()


# -- at least once -------------------------------------------------------------------------------------
def test_offsets_are_committed_only_after_the_outputs_are_acknowledged() -> None:
    rig = Rig(exactly_once=False)
    rig.receive(0, 0, 1, 2)
    rig.write(0, 0, 1, 2)
    assert rig.producer.produced == [(TOPICS.dead_letters, key(0, n)) for n in (0, 1, 2)]

    assert rig.consumer.commit_done() == {}  # produced, no delivery report yet
    assert rig.kafka_consumer.committed == []

    rig.outputs.serve(0)  # the three delivery reports arrive
    assert rig.consumer.commit_done() == {(FRAMES, 0): 3}
    assert rig.kafka_consumer.committed == [[(FRAMES, 0, 3)]]
    assert rig.consumer.commit_done() == {}  # nothing new: no second commit
    assert rig.kafka_consumer.committed == [[(FRAMES, 0, 3)]]


def test_the_commit_never_passes_a_record_still_in_flight() -> None:
    rig = Rig(exactly_once=False)
    rig.receive(0, 10, 11, 12, 13, 14)
    rig.receive(1, 5, 6)
    rig.write(0, 10, 11, 13, 14)  # 12 is still in the model
    rig.write(1, 6)  # 5 too (the dead letter of 6 overtook it)
    rig.outputs.serve(0)
    assert rig.consumer.commit_done() == {(FRAMES, 0): 12}
    assert rig.kafka_consumer.committed == [[(FRAMES, 0, 12)]]

    rig.write(0, 12)
    rig.write(1, 5)
    rig.outputs.serve(0)
    assert rig.consumer.commit_done() == {(FRAMES, 0): 15, (FRAMES, 1): 7}
    assert rig.kafka_consumer.committed == [[(FRAMES, 0, 12)], [(FRAMES, 0, 15), (FRAMES, 1, 7)]]


def test_a_failed_delivery_is_never_committed() -> None:
    rig = Rig(exactly_once=False, fail_keys={key(0, 21)})
    rig.receive(0, 20, 21, 22)
    rig.write(0, 20, 21, 22)
    rig.outputs.serve(0)  # 20 and 22 delivered, 21 failed
    assert rig.consumer.commit_done() == {(FRAMES, 0): 21}  # up to the failed record, not past it
    assert rig.kafka_consumer.committed == [[(FRAMES, 0, 21)]]
    assert rig.tracker.in_flight() == 2  # 21 (never acknowledged) and 22 (behind it)
    with pytest.raises(DeliveryFailed, match="not delivered"):
        rig.writer.raise_on_delivery_failure()  # the sink thread stops the worker on it


def test_a_failed_first_delivery_commits_nothing() -> None:
    rig = Rig(exactly_once=False, fail_keys={key(3, 0)})
    rig.receive(3, 0, 1)
    rig.write(3, 0, 1)
    rig.outputs.flush(1.0)  # the drain's flush: every report arrives
    assert rig.consumer.commit_done() == {}
    assert rig.kafka_consumer.committed == []


# -- exactly once --------------------------------------------------------------------------------------
def test_outputs_and_offsets_go_into_one_transaction() -> None:
    rig = Rig(exactly_once=True)
    rig.receive(0, 0, 1, 2)
    rig.receive(2, 40)
    rig.transaction([(0, 0), (0, 1), (0, 2), (2, 40)])
    assert rig.producer.calls == ["init", "begin", "send_offsets", "commit"]
    assert rig.producer.produced == [
        (TOPICS.dead_letters, key(p, o)) for p, o in [(0, 0), (0, 1), (0, 2), (2, 40)]
    ]
    assert sorted(rig.producer.sent_offsets[0]) == [(FRAMES, 0, 3), (FRAMES, 2, 41)]
    assert rig.tracker.in_flight() == 0  # done once the commit succeeded
    assert rig.tracker.commit_positions() == {}  # committed with the transaction
    assert rig.kafka_consumer.committed == []  # the consumer commits nothing itself
    assert rig.consumer.commit_done() == {}


def test_a_record_behind_a_gap_waits_for_the_next_transaction() -> None:
    rig = Rig(exactly_once=True)
    rig.receive(0, 7, 8, 9)
    rig.transaction([(0, 7), (0, 9)])  # 8 still in the model
    assert rig.producer.produced == [(TOPICS.dead_letters, key(0, 7))]
    assert rig.producer.sent_offsets == [[(FRAMES, 0, 8)]]
    assert rig.tracker.in_flight() == 2

    rig.transaction([(0, 8)])  # 9, carried over, goes with it
    assert rig.producer.produced[1:] == [(TOPICS.dead_letters, key(0, 9)), (TOPICS.dead_letters, key(0, 8))]
    assert rig.producer.sent_offsets[1] == [(FRAMES, 0, 10)]
    assert rig.producer.calls == [
        "init",
        "begin",
        "send_offsets",
        "commit",
        "begin",
        "send_offsets",
        "commit",
    ]
    assert rig.tracker.in_flight() == 0


ABORTABLE = KafkaError(KafkaError._STATE, "stand-in: transaction must be aborted", txn_requires_abort=True)


def test_an_aborted_transaction_commits_nothing() -> None:
    rig = Rig(exactly_once=True, commit_error=ABORTABLE)
    rig.receive(0, 0, 1)
    with pytest.raises(TransactionAborted):
        rig.transaction([(0, 0), (0, 1)])
    attempt = ["begin", "send_offsets", "commit", "abort"]
    assert rig.producer.calls == ["init", *attempt * ABORTED_ATTEMPTS]  # rewritten, then given up
    assert rig.producer.sent_offsets == [[(FRAMES, 0, 2)]] * ABORTED_ATTEMPTS
    assert rig.tracker.in_flight() == 2  # not done: read again after the restart
    assert rig.tracker.commit_positions() == {}


def test_a_stopping_worker_leaves_an_aborted_transaction_uncommitted() -> None:
    rig = Rig(exactly_once=True, commit_error=ABORTABLE)
    rig.receive(1, 4)
    rig.transaction([(1, 4)], give_up=lambda: True)  # no exception: the drain goes on
    assert rig.producer.calls == ["init", "begin", "send_offsets", "commit", "abort"]
    assert rig.tracker.in_flight() == 1
    assert rig.tracker.commit_positions() == {}


def test_a_fatal_transaction_error_aborts_and_stops() -> None:
    fatal = KafkaError(KafkaError._FENCED, "stand-in: fenced", fatal=True)
    rig = Rig(exactly_once=True, commit_error=fatal)
    rig.receive(0, 3)
    with pytest.raises(DeliveryFailed, match="commit_transaction"):
        rig.transaction([(0, 3)])
    assert rig.producer.calls == ["init", "begin", "send_offsets", "commit", "abort"]
    assert rig.tracker.in_flight() == 1
