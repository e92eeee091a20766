"""Exactly once: a transactional producer that a network fault left fatally broken is replaced in-process.

The network-fault campaign (``python -m chaos net-faults``, half-open Kafka link) showed the sequence replayed
here: the transaction needed an abort (messages timed out), ``abort_transaction`` then failed with a *fatal*
``INVALID_TXN_STATE`` and every later call (``begin_transaction`` first) raised it, so the worker exited. Now
the producer is replaced by a new one with the same configuration (same ``transactional.id``: its
``init_transactions`` fences the old one) and the uncommitted records are written again, once. Being fenced by
another producer stays fatal. The parts are the worker's own (:class:`KafkaOutputs`, :class:`OutputWriter`,
:class:`OffsetTracker`) on the stand-in clients of tests/unit/test_worker_delivery.py.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from schemas.records import DeadLetterReason
from tests.unit.test_worker_delivery import FRAMES, TOPICS, FakeProducer, MemoryInspectionSink, key
from workers.decode import FrameRejected
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker
from workers.sinks.dead_letters import RawRecord
from workers.sinks.kafka import DeliveryFailed, KafkaOutputs
from workers.sinks.writer import OutputWriter, Rejected

TIMED_OUT = KafkaError(
    KafkaError._MSG_TIMED_OUT, "13 message(s) timed out on results [2]", txn_requires_abort=True
)
INVALID_TXN_STATE = KafkaError(
    KafkaError.INVALID_TXN_STATE, "Failed to end transaction: invalid state", fatal=True
)
FENCED = KafkaError(KafkaError.PRODUCER_FENCED, "fenced by a newer producer", fatal=True)


class BrokenProducer(FakeProducer):
    """A producer whose transactional calls fail as scripted: ``errors`` maps a call to the error it raises
    (every time; a fatal error, once raised, is also what every later call raises, as in librdkafka)."""

    def __init__(self, errors: dict[str, KafkaError]) -> None:
        super().__init__(set(), None)
        self._errors = errors
        self._fatal: KafkaError | None = None

    def _step(self, name: str) -> None:
        self.calls.append(name)
        error = self._fatal or self._errors.get(name)
        if error is not None:
            if error.fatal():
                self._fatal = error
            raise KafkaException(error)

    def begin_transaction(self) -> None:
        self._step("begin")

    def send_offsets_to_transaction(self, positions: Any, metadata: Any, timeout: float = -1) -> None:
        self._step("send_offsets")

    def commit_transaction(self, timeout: float = -1) -> None:
        self._step("commit")

    def abort_transaction(self, timeout: float = -1) -> None:
        self._step("abort")


class Rig:
    """The exactly-once writer with a producer factory that hands out ``producers`` in turn."""

    def __init__(self, *producers: FakeProducer) -> None:
        self.producers = list(producers)
        self.configs: list[dict[str, Any]] = []
        handed = iter(self.producers)

        def producer_factory(config: dict[str, Any]) -> Any:
            self.configs.append(dict(config))
            return next(handed)

        self.tracker = OffsetTracker()
        config = {"transactional.id": "lineguard-worker-7"}
        self.outputs = KafkaOutputs(config, TOPICS, transactional=True, producer_factory=producer_factory)
        self.mongo = MemoryInspectionSink()
        self.writer = OutputWriter(
            self.tracker,
            self.outputs,
            self.mongo,  # type: ignore[arg-type]
            WorkerMetrics(),
            worker_id="worker-test",
            max_message_bytes=1_000_000,
            group_metadata=lambda: "group-metadata",
            rebalance_retry_s=0.0,
        )

    def transaction(self, partition: int, *offsets: int) -> None:
        items = []
        for offset in offsets:
            ticket = self.tracker.track(FRAMES, partition, offset)
            record = RawRecord(FRAMES, partition, offset, None, key(partition, offset), b"\x00garbage")
            error = FrameRejected(DeadLetterReason.UNDECODABLE_RECORD, "not an Avro frame")
            items.append(Rejected(ticket, record, error))
        self.writer.write_transaction(list(items), threading.Lock(), give_up=lambda: False)


def test_a_fatal_abort_replaces_the_producer_and_the_records_are_written_once() -> None:
    broken = BrokenProducer({"commit": TIMED_OUT, "abort": INVALID_TXN_STATE})
    healthy = FakeProducer(set(), None)
    rig = Rig(broken, healthy)

    rig.transaction(0, 0, 1)  # raised DeliveryFailed (begin_transaction: INVALID_TXN_STATE) before the fix

    assert broken.calls == ["init", "begin", "send_offsets", "commit", "abort"]
    assert healthy.calls == ["init", "begin", "send_offsets", "commit"]  # init fences the broken one
    assert rig.configs[1] == rig.configs[0]  # the same transactional.id
    assert rig.outputs.producer_replacements == 1
    # The new transaction holds the records and their offsets: committed once, nothing left in flight.
    assert healthy.produced == [(TOPICS.dead_letters, key(0, 0)), (TOPICS.dead_letters, key(0, 1))]
    assert healthy.sent_offsets == [[(FRAMES, 0, 2)]]
    assert rig.tracker.in_flight() == 0


def test_a_fatal_error_inside_the_transaction_replaces_the_producer() -> None:
    broken = BrokenProducer({"send_offsets": INVALID_TXN_STATE})
    healthy = FakeProducer(set(), None)
    rig = Rig(broken, healthy)

    rig.transaction(3, 40)

    # No abort on the broken producer: the new one's init_transactions aborted its transaction.
    assert broken.calls == ["init", "begin", "send_offsets"]
    assert healthy.calls == ["init", "begin", "send_offsets", "commit"]
    assert healthy.sent_offsets == [[(FRAMES, 3, 41)]]
    assert rig.tracker.in_flight() == 0


def test_a_fenced_producer_is_not_replaced() -> None:
    """Fenced means a newer producer owns the transactional.id (another incarnation of this worker): a
    replacement would fence it in turn, so the worker stops and nothing is committed."""
    fenced = BrokenProducer({"commit": FENCED})
    spare = FakeProducer(set(), None)
    rig = Rig(fenced, spare)

    with pytest.raises(DeliveryFailed, match="fenced"):
        rig.transaction(0, 5)

    assert rig.outputs.producer_replacements == 0
    assert spare.calls == []
    assert rig.tracker.in_flight() == 1  # read again by whoever owns the partition now
