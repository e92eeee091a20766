"""`lineguard counters run`: the results topic into the live counters, exact under crashes and replays.

Each batch goes to the store in one atomic step together with the next offset of every partition it read
(`CounterStore.apply`). On assignment the consumer starts each partition at the offset the *store* holds,
not at the group's committed one, so the counters and the position always match: a crash before, during
or after the step replays nothing that was counted and skips nothing that was not. Kafka offsets are
committed after the step too (synchronously), for lag monitoring and for a store that has lost its data.
Results are also counted once per result id, so a record written twice to the topic (an at-least-once
worker) or a partition handed over mid-batch by a rebalance is not counted twice.

With Redis gone the partitions are paused (the consumer keeps polling, so it stays in its group) and the
same batch is applied again once Redis answers. Undecodable records are skipped and counted in the stats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from infra.consumer_loop import Interrupted as Interrupted
from infra.consumer_loop import manual_commit_config, records, run_batches, through_outages
from quality.counters.store import CounterStore
from quality.counters.tally import Tally, tally
from schemas.records import InspectionResult
from schemas.serde import AvroRecordDeserializer

log = logging.getLogger(__name__)

# a store that is not answering: Redis down or restarting (the in-process store never raises)
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
)

T = TypeVar("T")


@dataclass(slots=True)
class CounterStats:
    records: int = 0  # records read and applied (or skipped as undecodable)
    counted: int = 0  # results new to the counters
    duplicates: int = 0  # results already counted (a replay or a duplicate record)
    rejected: int = 0
    batches: int = 0
    outages: int = 0


@dataclass(frozen=True, slots=True)
class CounterConfig:
    topic: str
    group_id: str = "lineguard-counters"
    batch_size: int = 2_000
    max_wait_s: float = 0.5
    outage_timeout_s: float = 3_600.0


class CountersConsumer:
    def __init__(
        self,
        kafka_config: dict[str, Any],
        config: CounterConfig,
        store: CounterStore,
        registry: SchemaRegistryClient | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.stats = CounterStats()
        self._stop = threading.Event()
        self._deserialize = AvroRecordDeserializer(InspectionResult, registry)
        self._consumer = Consumer(manual_commit_config(kafka_config, config.group_id))

    @property
    def stream(self) -> str:
        """Offsets in the store are kept per group and topic: two groups count independently."""
        return f"{self.config.group_id}:{self.config.topic}"

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [p.partition for p in partitions]
        started, delay = time.monotonic(), 0.2
        while True:  # inside the rebalance callback: no polling here, so wait in place (bounded)
            try:
                stored = self.store.offsets(self.stream, numbers)
                break
            except OUTAGE_ERRORS as exc:
                if self._stop.is_set() or time.monotonic() - started > self.config.outage_timeout_s:
                    raise
                log.warning("counter store unavailable at assignment (%s); waiting", exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        for tp in partitions:
            if tp.partition in stored:
                tp.offset = stored[tp.partition]
        log.info("assigned %s", {tp.partition: stored.get(tp.partition, "committed") for tp in partitions})
        consumer.assign(partitions)

    def run(self, stop: threading.Event) -> CounterStats:
        self._stop = stop
        self._consumer.subscribe([self.config.topic], on_assign=self._on_assign)
        run_batches(
            self._consumer,
            stop,
            self._handle,
            self.config.batch_size,
            self.config.max_wait_s,
            "counter store",
        )
        return self.stats

    def _decode(self, messages: list[Message]) -> tuple[list[Tally], dict[int, int], int]:
        tallies: list[Tally] = []
        next_offsets: dict[int, int] = {}
        rejected = 0
        for position, message in records(messages):
            partition, offset = position.partition, position.offset
            next_offsets[partition] = offset + 1
            try:
                result = self._deserialize(message.value())
            except Exception as exc:  # a bad record is skipped and counted, never a crash
                log.warning("skipped undecodable record [%d]@%d: %s", partition, offset, exc)
                result = None
            if result is None:  # undecodable, or a tombstone
                rejected += 1
                continue
            tallies.append(tally(result, self.store.window_s))
        return tallies, next_offsets, rejected

    def _handle(self, messages: list[Message]) -> None:
        tallies, next_offsets, rejected = self._decode(messages)
        if not next_offsets:
            return
        counted = self._with_store(lambda: self.store.apply(tallies, next_offsets, self.stream))
        commits = [TopicPartition(self.config.topic, p, o) for p, o in next_offsets.items()]
        try:
            self._consumer.commit(offsets=commits, asynchronous=False)
        except KafkaException as exc:  # the store's offsets rule; the group's are for lag and fallback
            log.warning("offset commit failed (the counters hold the position): %s", exc)
        self.stats.records += len(messages)
        self.stats.counted += counted
        self.stats.duplicates += len(tallies) - counted
        self.stats.rejected += rejected
        self.stats.batches += 1

    def _with_store(self, step: Callable[[], T]) -> T:
        """Run ``step`` against the store, pausing the partitions through an outage until it succeeds."""

        def outage_started() -> None:
            self.stats.outages += 1

        return through_outages(
            self._consumer,
            step,
            OUTAGE_ERRORS,
            stop=self._stop,
            timeout_s=self.config.outage_timeout_s,
            what="counter store",
            on_outage=outage_started,
        )
