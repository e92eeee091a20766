"""`lineguard parts`: results in, one decision per part out (part-decisions topic + MongoDB ``parts``).

Two stages in one loop, because a part's views come from different cameras and so from different partitions
of the results topic (keyed by camera):

1. re-key: every result that names a part is forwarded, bytes untouched, to the part-views topic keyed by
   ``part_id``; the results offsets are committed after the producer flushed.
2. join: the part-views consumer (one :class:`PartJoiner` per assigned partition) joins the views. Its state
   goes to a compacted changelog topic, partition for partition, and is read back when a partition is
   assigned (restart, rebalance). Decisions go to Kafka at once (the PLC bridge reads them there); the
   durable part runs behind the join on one writer thread, one batch at a time, so a batch grows to whatever
   arrived during the previous MongoDB round trip: one unordered bulk upsert by part id for the whole batch
   -> its changelog entries produced and flushed (with the decisions) -> the offsets consumed before the
   batch was cut committed. The changelog never records a decision MongoDB does not hold, and no offset is
   committed before its outputs are durable, so a crash anywhere replays views into a state that already
   knows them (a part decided twice gets the same views, the same key and the same MongoDB ``_id``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from pymongo import ReplaceOne
from pymongo.database import Database

from infra.kafka_topics import ensure_topics
from parts.joiner import PartJoiner
from parts.rules import PartRules
from schemas.errors import SerializationError, ServiceUnavailableError
from schemas.parts import PartDecision
from schemas.records import InspectionResult
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer

log = logging.getLogger(__name__)

PARTS_COLLECTION = "parts"
# Right after a topic is created its partition leaders are still being elected: these errors pass.
TRANSIENT_KAFKA_ERRORS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


def watermarks_with_retry(
    reader: Any,
    partition: TopicPartition,
    attempts: int = 8,
    backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, int]:
    """The partition's (low, high) watermarks, retrying transient broker errors with a doubling backoff
    (bounded: ``attempts`` tries, at most ``max_backoff_s`` between two); anything else, or the last
    transient error, is raised."""
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        try:
            marks = reader.get_watermark_offsets(partition, timeout=10)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if isinstance(error, KafkaError) else None
            if code not in TRANSIENT_KAFKA_ERRORS or attempt == attempts:
                raise
            log.info("watermarks of %s[%d]: %s, retrying", partition.topic, partition.partition, error)
        else:
            if marks is not None:
                return int(marks[0]), int(marks[1])
            if attempt == attempts:
                raise ServiceUnavailableError(
                    f"no watermarks for {partition.topic}[{partition.partition}] after {attempts} tries"
                )
        sleep(delay)
        delay = min(delay * 2, max_backoff_s)
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Batch:
    """Outputs of the join waiting to be made durable, and the offsets they cover."""

    decisions: list[PartDecision] = field(default_factory=list)
    changelog: list[tuple[int, str, bytes]] = field(default_factory=list)
    offsets: list[TopicPartition] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PartTopics:
    results: str = "lineguard.results"
    views: str = "lineguard.part-views"
    changelog: str = "lineguard.part-changelog"
    decisions: str = "lineguard.part-decisions"

    @classmethod
    def with_prefix(cls, prefix: str) -> PartTopics:
        return cls(
            f"{prefix}.results",
            f"{prefix}.part-views",
            f"{prefix}.part-changelog",
            f"{prefix}.part-decisions",
        )


@dataclass(slots=True)
class ServiceCounters:
    forwarded: int = 0
    without_part: int = 0  # results of frames that name no part: not part of any join
    undecodable: int = 0  # logged and skipped: the worker dead-letters bad frames before they get here
    decisions: int = 0


class PartService:
    """The re-key and join stages over one producer; call :meth:`step` in a loop or :meth:`run`."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        database: Database[dict[str, Any]],
        rules: PartRules,
        topics: PartTopics = PartTopics(),
        group_id: str = "lineguard-parts",
        partitions: int = 3,
    ) -> None:
        self._kafka = dict(kafka_config)
        self._rules = rules
        self.topics = topics
        self._partitions = partitions
        self._parts = database.get_collection(PARTS_COLLECTION)
        self._read_result = AvroRecordDeserializer(InspectionResult)
        self._write_decision = AvroRecordSerializer(PartDecision)
        self.joiners: dict[int, PartJoiner] = {}
        self.counters = ServiceCounters()
        consumer_base = {**self._kafka, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        self._producer = Producer({**self._kafka, "enable.idempotence": True, "linger.ms": 2})
        self._rekey = Consumer({**consumer_base, "group.id": f"{group_id}-rekey"})
        self._join = Consumer({**consumer_base, "group.id": group_id})
        self._pending = _Batch()
        self._pending_messages = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="parts-durable")
        self._in_flight: Future[int] | None = None

    def start(self) -> None:
        ensure_topics(
            self._kafka, [self.topics.results, self.topics.views, self.topics.decisions], self._partitions
        )
        ensure_topics(
            self._kafka,
            [self.topics.changelog],
            self._partitions,
            extra_topic_config={"cleanup.policy": "compact"},
        )
        self._rekey.subscribe([self.topics.results])
        self._join.subscribe([self.topics.views], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._drain()
        finally:
            self._writer.shutdown(wait=True)
            self._producer.flush(10)
        self._rekey.close()
        self._join.close()

    def step(self, poll_s: float = 0.01) -> int:
        """One iteration of both stages; returns how many decisions it made durable."""
        self._forward(self._rekey.consume(500, poll_s))
        self._join_views(self._join.consume(500, poll_s))
        return self._hand_to_writer()

    # -- stage 1 -----------------------------------------------------------------------------------------

    def _forward(self, messages: list[Message]) -> None:
        if not messages:
            return
        for message in messages:
            if message.error() is not None:
                log.warning("results consumer: %s", message.error())
                continue
            try:
                result = self._read_result(message.value(), None)
            except SerializationError as exc:
                self.counters.undecodable += 1
                log.warning(
                    "skipping an undecodable result at %s[%d]@%d: %s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    exc,
                )
                continue
            if result is None or result.part_id is None:
                self.counters.without_part += 1
                continue
            self._producer.produce(self.topics.views, key=result.part_id.encode(), value=message.value())
            self.counters.forwarded += 1
        self._flush()
        # Asynchronous: the views are flushed already, and a lost commit only replays views the joiner knows.
        self._rekey.commit(asynchronous=True)

    # -- stage 2 -----------------------------------------------------------------------------------------

    def _join_views(self, messages: list[Message]) -> None:
        batch = self._pending
        decisions: list[PartDecision] = []
        for message in messages:
            if message.error() is not None:
                log.warning("part-views consumer: %s", message.error())
                continue
            partition = message.partition() or 0
            joiner = self.joiners.get(partition)
            if joiner is None:  # revoked inside this batch
                continue
            key = (message.key() or b"").decode()
            try:
                result = self._read_result(message.value(), None)
            except SerializationError:
                result = None
            if result is None:
                self.counters.undecodable += 1
                continue
            output = joiner.add(key, result)
            decisions += output.decisions
            batch.changelog += [(partition, part, value) for part, value in output.changelog]
        for partition, joiner in self.joiners.items():
            output = joiner.sweep()
            decisions += output.decisions
            batch.changelog += [(partition, part, value) for part, value in output.changelog]
        for decision in decisions:  # to Kafka at once: the bridge does not wait for MongoDB
            self._producer.produce(
                self.topics.decisions, key=decision.part_id.encode(), value=self._write_decision(decision)
            )
        self._producer.poll(0)
        batch.decisions += decisions
        self._pending_messages += len(messages)

    def _hand_to_writer(self, wait: bool = False) -> int:
        """Start the next durable batch if the writer is idle (or, with ``wait``, once it is); returns how
        many decisions the batch that finished made durable. A writer error is raised here."""
        made_durable = 0
        if self._in_flight is not None and (wait or self._in_flight.done()):
            made_durable = self._in_flight.result()
            self._in_flight = None
        batch = self._pending
        if self._in_flight is not None or not (batch.decisions or batch.changelog or self._pending_messages):
            return made_durable
        if self._pending_messages:  # positions now cover every view whose outputs are in this batch
            batch.offsets = [tp for tp in self._join.position(self._join.assignment()) if tp.offset >= 0]
        self._pending = _Batch()
        self._pending_messages = 0
        self._in_flight = self._writer.submit(self._make_durable, batch)
        return made_durable

    def _make_durable(self, batch: _Batch) -> int:
        """On the writer thread: MongoDB, then the changelog, then the offsets (see the module doc)."""
        if batch.decisions:
            self._parts.bulk_write(
                [
                    ReplaceOne({"_id": d.part_id}, {"_id": d.part_id, **d.to_dict()}, upsert=True)
                    for d in batch.decisions
                ],
                ordered=False,
            )
        for partition, part, value in batch.changelog:
            self._producer.produce(self.topics.changelog, key=part.encode(), value=value, partition=partition)
        self._flush()  # the changelog and the batch's decisions
        if batch.offsets:
            self._join.commit(offsets=batch.offsets, asynchronous=False)
        self.counters.decisions += len(batch.decisions)
        return len(batch.decisions)

    def _drain(self) -> int:
        """Make everything joined so far durable (before a revoke or a close)."""
        made_durable = self._hand_to_writer(wait=True)
        return made_durable + self._hand_to_writer(wait=True)

    def _flush(self) -> None:
        remaining = self._producer.flush(30)
        if remaining:
            raise RuntimeError(f"{remaining} records not acknowledged by Kafka within 30 s")

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            joiner = PartJoiner(self._rules)
            joiner.restore(self._read_changelog(tp.partition))
            self.joiners[tp.partition] = joiner
            log.info(
                "part-views[%d] assigned: %d pending, %d decided restored",
                tp.partition,
                len(joiner.pending),
                len(joiner.decided),
            )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain()  # commits for these partitions while they are still ours
        for tp in partitions:
            self.joiners.pop(tp.partition, None)  # its state is durable in the changelog already

    def _read_changelog(self, partition: int) -> list[tuple[str, bytes | None]]:
        reader = Consumer(
            {**self._kafka, "group.id": f"restore-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
        try:
            _, high = watermarks_with_retry(reader, TopicPartition(self.topics.changelog, partition))
            entries: list[tuple[str, bytes | None]] = []
            if high <= 0:
                return entries
            reader.assign([TopicPartition(self.topics.changelog, partition, OFFSET_BEGINNING)])
            position = -1
            deadline = time.monotonic() + 60
            while position < high - 1:
                if time.monotonic() > deadline:  # never start joining on half a state
                    raise ServiceUnavailableError(
                        f"changelog {self.topics.changelog}[{partition}] unreadable"
                    )
                message = reader.poll(1.0)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        break
                    continue
                position = message.offset() or 0
                entries.append(((message.key() or b"").decode(), message.value()))
            return entries
        finally:
            reader.close()
