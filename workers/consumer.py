"""The frames consumer: a plain confluent-kafka ``Consumer`` polled on its own thread.

Why its own thread: inference of a batch may take longer than anything librdkafka tolerates between polls, so
the poll loop never waits for the model. It hands every record to the pipeline's intake, commits the positions
the :class:`~workers.offsets.OffsetTracker` allows, and applies backpressure by *pausing* the assigned
partitions while too many records are in flight (resuming below half of the bound) instead of growing
buffers. librdkafka's own prefetch is bounded by ``queued.max.messages.kbytes`` and the fetch sizes
(see :meth:`workers.settings.WorkerSettings.consumer_config`).

With a decision deadline, ``hold`` (workers.deadline_stage) bounds the in-flight window by time as well: while
it says the oldest frame has waited long enough inside the worker, the loop takes no record (it does not
pause: a pause/resume cycle costs librdkafka a re-fetch of ~0.5 s, longer than a deadline) and the records
wait in the client's bounded prefetch and in Kafka, where the position, hence the lag, has not moved.

Rebalance callbacks run on this thread, inside ``consume()``: on revoke the loop waits (bounded) for the
in-flight records of the revoked partitions, commits what is done, and lets the pipeline drop the rest; on
assign librdkafka starts from the committed offsets.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from schemas.errors import ServiceUnavailableError
from workers.clients import ConsumerClient, ConsumerFactory, kafka_consumer
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker, PartitionKey, Ticket

log = logging.getLogger(__name__)

Intake = Callable[[Message, Ticket], None]


class RebalanceListener(Protocol):
    def partitions_assigned(self, keys: list[PartitionKey]) -> None: ...

    def partitions_revoked(self, keys: list[PartitionKey], lost: bool) -> None:
        """Drop queued work of these partitions and release them from the tracker."""
        ...


@dataclass(frozen=True, slots=True)
class PauseChange:
    pause: frozenset[PartitionKey] = frozenset()
    resume: frozenset[PartitionKey] = frozenset()


class Backpressure:
    """When to pause and resume partitions: engage at ``max_in_flight`` records in flight, release at half
    of it (the gap keeps the consumer from flapping). While engaged, partitions assigned meanwhile are paused
    too. Pure: the caller applies the change to the consumer."""

    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._high = max_in_flight
        self._low = max_in_flight // 2
        self.engaged = False
        self._paused: set[PartitionKey] = set()

    def update(self, in_flight: int, assignment: set[PartitionKey]) -> PauseChange:
        if not self.engaged and in_flight >= self._high:
            self.engaged = True
        elif self.engaged and in_flight <= self._low:
            self.engaged = False
            resumed = frozenset(self._paused & assignment)
            self._paused.clear()
            return PauseChange(resume=resumed)
        if not self.engaged:
            return PauseChange()
        to_pause = frozenset(assignment - self._paused)
        self._paused |= to_pause
        return PauseChange(pause=to_pause)

    def forget(self, keys: Iterable[PartitionKey]) -> None:
        """Partitions revoked: nothing to resume for them."""
        self._paused.difference_update(keys)


class FrameConsumer:
    """Owns the consumer (made by ``consumer_factory``) and its poll thread."""

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        tracker: OffsetTracker,
        intake: Intake,
        listener: RebalanceListener,
        metrics: WorkerMetrics,
        *,
        max_in_flight: int,
        commit_offsets: bool = True,
        commit_interval_s: float = 0.5,
        revoke_timeout_s: float = 10.0,
        poll_batch: int = 64,
        hold: Callable[[], bool] | None = None,
        consumer_factory: ConsumerFactory = kafka_consumer,
    ) -> None:
        self._consumer = consumer_factory(config)
        self._topic = topic
        self._tracker = tracker
        self._intake = intake
        self._listener = listener
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._commit_offsets = commit_offsets  # False with --exactly-once: offsets go into the transaction
        self._commit_interval_s = commit_interval_s
        self._revoke_timeout_s = revoke_timeout_s
        self._poll_batch = poll_batch
        self._hold = hold
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assignment: set[PartitionKey] = set()
        self._backpressure = Backpressure(max_in_flight)
        self._group_metadata: Any = None
        self.error: BaseException | None = None  # why the loop died, if it did

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._consumer.subscribe(
            [self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._thread = threading.Thread(target=self._run, name="worker-poll", daemon=True)
        self._thread.start()

    def stop_polling(self, timeout_s: float = 10.0) -> None:
        """Stop fetching new records; the consumer stays in the group until :meth:`close`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def close(self) -> None:
        """Leave the group (commits nothing by itself: commit first)."""
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer close: %s", exc)

    def set_revoke_timeout(self, timeout_s: float) -> None:
        self._revoke_timeout_s = timeout_s

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def assignment(self) -> set[PartitionKey]:
        return set(self._assignment)

    def group_metadata(self) -> Any:
        """The consumer's group metadata (generation, member id) for ``send_offsets_to_transaction``.

        Read from the cache the poll thread refreshes: confluent-kafka serializes calls on one consumer, so
        asking the consumer directly from the sink thread would wait behind ``consume()`` for as long as the
        poll loop keeps it busy (long enough for a transaction to time out).
        """
        if self._group_metadata is None:
            raise RuntimeError("the consumer has not joined its group yet")
        return self._group_metadata

    # -- commits ---------------------------------------------------------------------------------------
    def commit_done(self, keys: Iterable[PartitionKey] | None = None) -> dict[PartitionKey, int]:
        """Synchronously commit the tracker's positions (optionally only for ``keys``); returns them."""
        positions = self._tracker.commit_positions()
        if keys is not None:
            wanted = set(keys)
            positions = {k: v for k, v in positions.items() if k in wanted}
        if not positions:
            return {}
        offsets = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in positions.items()
        ]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError._NO_OFFSET:
                return {}
            # A failed commit is not data loss: the records are reprocessed after a rebalance (at least once).
            log.warning("offset commit failed (%s); will retry", error.str())
            return {}
        self._tracker.mark_committed(positions)
        return positions

    # -- the loop --------------------------------------------------------------------------------------
    def _run(self) -> None:
        last_commit = time.monotonic()
        last_lag = 0.0
        try:
            while not self._stop.is_set():
                room = self._apply_backpressure()
                if self._hold is not None and self._hold():
                    self._stop.wait(0.005)  # take nothing for now (see the module doc); commits go on
                else:
                    self._take(room)
                now = time.monotonic()
                if self._commit_offsets and now - last_commit >= self._commit_interval_s:
                    self.commit_done()
                    last_commit = now
                if now - last_lag >= 2.0:
                    self._update_lag()
                    last_lag = now
        except BaseException as exc:  # the pipeline decides what a dead poll loop means
            log.exception("poll loop failed")
            self.error = exc

    def _take(self, room: int) -> None:
        # Never take more than the in-flight bound allows (paused partitions may still hand over what
        # librdkafka had already fetched; consume(1) keeps the loop serving the group).
        limit = max(1, min(self._poll_batch, room))
        # consume(n, timeout) waits the whole timeout unless n records arrive, which held every frame of a
        # slow stream ~50 ms: wait for the first record only, then take what is queued.
        messages = self._consumer.consume(num_messages=1, timeout=0.1)
        if messages and limit > 1:
            messages += self._consumer.consume(num_messages=limit - 1, timeout=0)
        self._group_metadata = self._consumer.consumer_group_metadata()
        for message in messages:
            self._receive(message)

    def _receive(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            if error.fatal():
                raise ServiceUnavailableError(f"Kafka consumer fatal error: {error.str()}")
            log.warning("consumer error: %s", error.str())
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        if (topic, partition) not in self._assignment:
            return  # fetched before a revoke; the new owner reads it
        try:
            ticket = self._tracker.track(topic, partition, offset)
        except ValueError:
            # Delivered again (an offset reset, a rewind): the earlier delivery is done or still in flight.
            log.warning("skipping %s[%d]@%d: delivered again", topic, partition, offset)
            return
        self._metrics.frames_in.inc()
        self._intake(message, ticket)

    def _apply_backpressure(self) -> int:
        """Pause or resume the partitions; returns how many more records may be taken now."""
        in_flight = self._tracker.in_flight()
        self._metrics.in_flight.set(in_flight)
        change = self._backpressure.update(in_flight, self._assignment)
        if change.resume:
            self._consumer.resume([TopicPartition(t, p) for t, p in change.resume])
            log.info("backpressure released: resuming %d partitions", len(change.resume))
        if change.pause:
            self._consumer.pause([TopicPartition(t, p) for t, p in change.pause])
            log.info(
                "backpressure: %d records in flight, pausing %d partitions", in_flight, len(change.pause)
            )
        self._metrics.paused.set(1 if self._backpressure.engaged else 0)
        return self._max_in_flight - in_flight

    def _update_lag(self) -> None:
        if not self._assignment:
            return
        try:
            positions = self._consumer.position([TopicPartition(t, p) for t, p in self._assignment])
            for tp in positions:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    self._metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - tp.offset))
        except KafkaException as exc:
            log.debug("lag update skipped: %s", exc)

    # -- rebalance callbacks (run on the poll thread, inside consume) ----------------------------------
    def _on_assign(self, consumer: ConsumerClient, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self._assignment |= set(keys)
        self._group_metadata = consumer.consumer_group_metadata()  # the new generation, before any record
        log.info("assigned %s", _describe(keys))
        self._listener.partitions_assigned(keys)

    def _on_revoke(self, consumer: ConsumerClient, partitions: list[TopicPartition]) -> None:
        # The group has moved to a new generation (this member keeps the rest of its assignment): a
        # transaction finishing the revoked partitions' in-flight work during the wait below must commit its
        # offsets with it, or the broker refuses them (ILLEGAL_GENERATION) for as long as the wait lasts.
        self._group_metadata = consumer.consumer_group_metadata()
        self._revoke([(tp.topic, tp.partition) for tp in partitions], lost=False)

    def _on_lost(self, consumer: ConsumerClient, partitions: list[TopicPartition]) -> None:
        # Not refreshed before the release: a lost member has no valid generation to commit with.
        self._revoke([(tp.topic, tp.partition) for tp in partitions], lost=True)
        self._group_metadata = consumer.consumer_group_metadata()

    def _revoke(self, keys: list[PartitionKey], lost: bool) -> None:
        if not lost:
            # Finish what is in flight for these partitions (bounded), then commit it.
            drained = self._tracker.wait_until_done(keys, self._revoke_timeout_s)
            if self._commit_offsets:
                self.commit_done(keys)
            if not drained:
                log.warning("revoke: in-flight work of %s not done in time; dropped", _describe(keys))
        self._listener.partitions_revoked(keys, lost)
        self._assignment -= set(keys)
        self._backpressure.forget(keys)
        for topic, partition in keys:
            with contextlib.suppress(KeyError):
                self._metrics.lag.remove(topic, str(partition))
        log.info("%s %s", "lost" if lost else "revoked", _describe(keys))


def _describe(keys: Iterable[PartitionKey]) -> str:
    keys = sorted(keys)
    if not keys:
        return "no partitions"
    return ", ".join(f"{topic}[{partition}]" for topic, partition in keys)
