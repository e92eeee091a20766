"""The transactional outputs survive a ``send_offsets_to_transaction`` that never returns.

librdkafka does not enforce that call's timeout while its cached group coordinator is down
(confluentinc/librdkafka#5456): after a broker restart the exactly-once sink thread blocked there for good
and the chaos run lost 53 frames. The producer here is a stand-in (pure logic: which calls the outputs make,
in which order, on which client); the real broker path is tests/integration/test_chaos_faults.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from schemas.topics import TopicNames
from workers.clients import ProducerFactory
from workers.sinks.kafka import SEND_OFFSETS_TIMEOUT_S, KafkaOutputs, TransactionAborted

TOPICS = TopicNames.with_prefix("watchdog")


class _Producer:
    """Records the transactional calls; ``hang`` makes send_offsets_to_transaction block until released."""

    def __init__(self, release: threading.Event, hang: bool, offsets_error: KafkaError | None) -> None:
        self.calls: list[str] = []
        self.offsets_timeouts: list[float] = []
        self._release = release
        self._hang = hang
        self._offsets_error = offsets_error

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        self.calls.append("send_offsets")
        self.offsets_timeouts.append(timeout)
        if self._hang:
            self._release.wait()  # librdkafka#5456: the timeout is not enforced
        if self._offsets_error is not None:
            raise KafkaException(self._offsets_error)

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")


class _Factory:
    def __init__(self, hangs: list[bool], offsets_error: KafkaError | None = None) -> None:
        self.release = threading.Event()
        self.producers: list[_Producer] = []
        self._hangs = hangs
        self._offsets_error = offsets_error

    def __call__(self, config: dict[str, Any]) -> _Producer:
        hang = self._hangs[len(self.producers)] if len(self.producers) < len(self._hangs) else False
        producer = _Producer(self.release, hang, self._offsets_error)
        self.producers.append(producer)
        return producer


@pytest.fixture
def released() -> Iterator[list[_Factory]]:
    factories: list[_Factory] = []
    yield factories
    for factory in factories:
        factory.release.set()  # let the blocked stand-in threads end


def _outputs(factory: _Factory) -> KafkaOutputs:
    config = {"transactional.id": "lineguard-test", "transaction.timeout.ms": 300}
    return KafkaOutputs(config, TOPICS, transactional=True, producer_factory=cast(ProducerFactory, factory))


OFFSETS = [TopicPartition("frames", 0, 7)]


def test_stuck_send_offsets_replaces_the_producer_and_the_transaction_can_be_written_again(
    released: list[_Factory],
) -> None:
    factory = _Factory(hangs=[True])
    released.append(factory)
    outputs = _outputs(factory)
    outputs.begin()
    # Returns at all (the stand-in blocks until teardown): bounded by transaction.timeout.ms + a grace.
    with pytest.raises(TransactionAborted) as caught:
        outputs.commit(OFFSETS, object(), timeout_s=30.0)
    assert not caught.value.group_changed
    stuck, fresh = factory.producers
    # The stuck client never got a commit; the new one fenced it (init_transactions) before anything else.
    assert stuck.calls == ["init", "begin", "send_offsets"]
    assert fresh.calls == ["init"]
    assert outputs.producer_replacements == 1
    outputs.abort()  # the writer aborts on any failure: nothing is left to abort on the new client
    assert fresh.calls == ["init"]
    # The rewrite goes through the new producer, offsets and all.
    outputs.begin()
    outputs.commit(OFFSETS, object(), timeout_s=30.0)
    assert fresh.calls == ["init", "begin", "send_offsets", "commit"]
    assert stuck.calls == ["init", "begin", "send_offsets"]


def test_send_offsets_errors_keep_their_meaning_and_the_producer(released: list[_Factory]) -> None:
    rebalance = KafkaError(KafkaError.REBALANCE_IN_PROGRESS, "rebalance", txn_requires_abort=True)
    factory = _Factory(hangs=[], offsets_error=rebalance)
    released.append(factory)
    outputs = _outputs(factory)
    outputs.begin()
    with pytest.raises(TransactionAborted) as caught:
        outputs.commit(OFFSETS, object())
    assert caught.value.group_changed
    outputs.abort()
    (producer,) = factory.producers
    assert producer.calls == ["init", "begin", "send_offsets", "abort"]
    assert outputs.producer_replacements == 0


@pytest.mark.parametrize(("transaction_timeout_ms", "bound_s"), [(60_000, 5.0), (15_000, 5.0), (3_000, 3.0)])
def test_send_offsets_gets_a_few_seconds_not_the_whole_transaction_timeout(
    released: list[_Factory], transaction_timeout_ms: int, bound_s: float
) -> None:
    # The watchdog waits the same bound (plus its grace): after a connection reset the call hung until it.
    factory = _Factory(hangs=[])
    released.append(factory)
    config = {"transactional.id": "lineguard-test", "transaction.timeout.ms": transaction_timeout_ms}
    outputs = KafkaOutputs(
        config, TOPICS, transactional=True, producer_factory=cast(ProducerFactory, factory)
    )
    outputs.begin()
    outputs.commit(OFFSETS, object(), timeout_s=30.0)
    assert factory.producers[0].offsets_timeouts == [bound_s]
    assert SEND_OFFSETS_TIMEOUT_S == 5.0


class _SlowRetriableProducer(_Producer):
    """send_offsets_to_transaction fails retriably, each attempt within its timeout, before it succeeds: the
    CONCURRENT_TRANSACTIONS of a coordinator still completing the abort before it."""

    def __init__(self, failures: int, attempt_s: float) -> None:
        super().__init__(threading.Event(), hang=False, offsets_error=None)
        self._failures = failures
        self._attempt_s = attempt_s

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        self.calls.append("send_offsets")
        threading.Event().wait(self._attempt_s)
        if self.calls.count("send_offsets") <= self._failures:
            raise KafkaException(KafkaError(KafkaError.CONCURRENT_TRANSACTIONS, "busy", retriable=True))


def test_retries_that_each_return_in_time_are_not_a_stuck_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # 4 attempts of 0.2 s: 0.8 s in all, past one attempt's bound (0.3 s + 0.2 s grace), never stuck.
    monkeypatch.setattr("workers.sinks.kafka._WATCHDOG_GRACE_S", 0.2)
    producers: list[_SlowRetriableProducer] = []

    def factory(config: dict[str, Any]) -> _SlowRetriableProducer:
        producers.append(_SlowRetriableProducer(failures=3, attempt_s=0.2))
        return producers[-1]

    outputs = KafkaOutputs(
        {"transactional.id": "lineguard-test", "transaction.timeout.ms": 300},
        TOPICS,
        transactional=True,
        producer_factory=cast(ProducerFactory, factory),
    )
    outputs.begin()
    outputs.commit(OFFSETS, object(), timeout_s=30.0)
    assert outputs.producer_replacements == 0
    (producer,) = producers
    assert producer.calls == ["init", "begin"] + ["send_offsets"] * 4 + ["commit"]
