"""The sink interface (infra.sinks) and OutputWriter's document sinks, on in-memory sinks (pure logic).

A second document sink composed next to the first gets every batch; a sink under backpressure is offered the
same batch again after the wait it asked for, so nothing is lost or written twice; close flushes first. The
real-server counterparts: tests/integration/test_mongo_write_concern.py (MongoDB's retries) and
test_workers_transactions.py (the writer against the broker and MongoDB).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest

from infra.sinks import Sink, SinkBackpressure, close_all, write_through_backpressure
from schemas.records import InspectionResult
from tests.unit.test_worker_delivery import TOPICS, FakeProducer
from tests.worker_batches import inferred_batch
from workers.assemble import WorkerParts
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker
from workers.sinks.kafka import KafkaOutputs
from workers.sinks.writer import InferredBatch, OutputWriter


class MemorySink:
    """Takes every batch; refuses the first ``refusals`` offers with a backpressure hint; buffers until
    flushed when ``buffered``."""

    def __init__(self, refusals: int = 0, hint_s: float = 0.001, buffered: bool = False) -> None:
        self.batches: list[list[object]] = []  # what reached the "server"
        self.offers = 0
        self.events: list[str] = []
        self._refusals = refusals
        self._hint_s = hint_s
        self._buffered = buffered
        self._buffer: list[list[object]] = []

    def write_batch(self, items: Sequence[object]) -> None:
        self.offers += 1
        if self.offers <= self._refusals:
            raise SinkBackpressure(self._hint_s, "stand-in: server busy")
        (self._buffer if self._buffered else self.batches).append(list(items))

    def flush(self, timeout_s: float) -> None:
        self.events.append("flush")
        self.batches.extend(self._buffer)
        self._buffer = []

    def close(self) -> None:
        self.events.append("close")


def test_backpressure_waits_the_hint_and_offers_the_same_batch_again() -> None:
    sink = MemorySink(refusals=2, hint_s=0.75)
    waits: list[float] = []
    write_through_backpressure(sink, [1, 2, 3], sleep=waits.append)
    assert waits == [0.75, 0.75]  # the caller waited as long as the sink asked, each time
    assert sink.offers == 3
    assert sink.batches == [[1, 2, 3]]  # taken once: nothing lost, nothing twice


def test_a_caller_that_gives_up_gets_the_backpressure_and_nothing_is_written() -> None:
    sink = MemorySink(refusals=5)
    with pytest.raises(SinkBackpressure) as raised:
        write_through_backpressure(sink, ["a"], give_up=lambda: True, sleep=lambda _: None)
    assert raised.value.retry_after_s == 0.001
    assert sink.batches == []  # left uncommitted: read again, written then


def test_close_flushes_what_is_buffered_before_closing() -> None:
    sinks = [MemorySink(buffered=True), MemorySink(buffered=True)]
    for sink in sinks:
        sink.write_batch(["x", "y"])
        assert sink.batches == []  # still buffered
    close_all(sinks, timeout_s=1.0)
    for sink in sinks:
        assert sink.events == ["flush", "close"]
        assert sink.batches == [["x", "y"]]


def _writer(
    documents: Sink[InspectionResult] | Sequence[Sink[InspectionResult]], exactly_once: bool
) -> tuple[OutputWriter, OffsetTracker]:
    tracker = OffsetTracker()
    producer = FakeProducer(set(), None)
    outputs = KafkaOutputs({}, TOPICS, transactional=exactly_once, producer_factory=lambda config: producer)
    writer = OutputWriter(
        tracker,
        outputs,
        documents,
        WorkerMetrics(),
        worker_id="worker-test",
        max_message_bytes=1_000_000,
        group_metadata=lambda: "group-metadata",
        rebalance_retry_s=0.0,
    )
    return writer, tracker


def _frame_numbers(sink: MemorySink) -> list[int]:
    return [result.frame_number for batch in sink.batches for result in batch]  # type: ignore[attr-defined]


def test_a_second_document_sink_gets_every_batch_and_backpressure_loses_nothing() -> None:
    first, second = MemorySink(), MemorySink(refusals=3)  # the second one's server is slow at first
    writer, tracker = _writer([first, second], exactly_once=False)
    whole = inferred_batch(tracker, "frames", 8)
    for start in (0, 4):  # two batches
        half = slice(start, start + 4)
        batch = InferredBatch(whole.frames[half], whole.predictions[half], whole.inferred_at, whole.builder)
        writer.write(batch, give_up=lambda: False)
    done = threading.Event()
    done.set()  # drain what is queued, then return
    writer.mongo_loop(done)
    assert _frame_numbers(first) == list(range(8))
    assert _frame_numbers(second) == list(range(8))  # every document once, after three refusals
    assert second.offers == 3 + len(second.batches)


def test_the_transactional_path_writes_every_document_sink_before_the_transaction() -> None:
    first, second = MemorySink(), MemorySink(refusals=1)
    writer, tracker = _writer([first, second], exactly_once=True)
    batch = inferred_batch(tracker, "frames", 3)
    writer.write_transaction([batch], threading.Lock(), give_up=lambda: False)
    assert _frame_numbers(first) == [0, 1, 2]
    assert _frame_numbers(second) == [0, 1, 2]
    assert tracker.in_flight() == 0  # committed with the transaction


def test_one_sink_alone_is_still_accepted() -> None:
    only = MemorySink()
    writer, tracker = _writer(only, exactly_once=True)
    writer.write_transaction([inferred_batch(tracker, "frames", 2)], threading.Lock(), give_up=lambda: False)
    assert _frame_numbers(only) == [0, 1]


class _Closer:
    """Records its close in a shared log (the consumer, the MongoDB client of a worker's parts)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self._name = name
        self._log = log

    def close(self) -> None:
        self._log.append(f"{self._name} closed")


def test_a_stopping_worker_flushes_and_closes_its_document_sinks_before_the_client_they_share() -> None:
    order: list[str] = []
    buffered = MemorySink(buffered=True)
    buffered.write_batch(["held"])  # in the sink's buffer, not yet written
    parts = WorkerParts(
        mongo_client=_Closer("mongo client", order),
        mongo=cast(Any, None),
        document_sinks=(buffered,),
        models=cast(Any, None),
        serving=cast(Any, None),
        outputs=cast(Any, None),
        pool=ThreadPoolExecutor(max_workers=1),
        consumer=cast(Any, _Closer("consumer", order)),
        writer=cast(Any, None),
        health=None,
    )
    parts.close()
    assert buffered.batches == [["held"]]  # what the sink held was written, not dropped
    assert buffered.events == ["flush", "close"]
    assert order == ["consumer closed", "mongo client closed"]
