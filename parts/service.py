"""`lineguard parts`: results in, one decision per part out (part-decisions topic + MongoDB ``parts``).

Two stages in one loop, because a part's views come from different cameras and so from different partitions
of the results topic (keyed by camera):

1. re-key: every result that names a part is forwarded, bytes untouched, to the part-views topic keyed by
   ``part_id``; the results offsets are committed after the producer flushed.
2. join: the part-views consumer (one :class:`PartJoiner` per assigned partition) joins the views. Its state
   goes to a compacted changelog topic, partition for partition, and is read back when a partition is
   assigned (restart, rebalance). Order per iteration: decisions produced and flushed -> MongoDB upsert by
   part id -> changelog flushed -> offsets committed. A crash anywhere replays views into a state that already
   knows them (a part decided twice gets the same views, the same key and the same MongoDB ``_id``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
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
        self._producer.flush(10)
        self._rekey.close()
        self._join.close()

    def step(self, poll_s: float = 0.01) -> int:
        """One iteration of both stages; returns how many decisions it made durable."""
        self._forward(self._rekey.consume(500, poll_s))
        return self._join_views(self._join.consume(500, poll_s))

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
        self._rekey.commit(asynchronous=False)

    # -- stage 2 -----------------------------------------------------------------------------------------

    def _join_views(self, messages: list[Message]) -> int:
        decisions: list[PartDecision] = []
        changelog: list[tuple[int, str, bytes]] = []
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
            changelog += [(partition, part, value) for part, value in output.changelog]
        for partition, joiner in self.joiners.items():
            output = joiner.sweep()
            decisions += output.decisions
            changelog += [(partition, part, value) for part, value in output.changelog]
        if not decisions and not changelog and not messages:
            return 0
        for decision in decisions:
            self._producer.produce(
                self.topics.decisions, key=decision.part_id.encode(), value=self._write_decision(decision)
            )
        self._flush()
        if decisions:
            self._parts.bulk_write(
                [
                    ReplaceOne({"_id": d.part_id}, {"_id": d.part_id, **d.to_dict()}, upsert=True)
                    for d in decisions
                ],
                ordered=False,
            )
        for partition, part, value in changelog:
            self._producer.produce(self.topics.changelog, key=part.encode(), value=value, partition=partition)
        self._flush()
        if messages:
            self._join.commit(asynchronous=False)
        self.counters.decisions += len(decisions)
        return len(decisions)

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
        for tp in partitions:
            self.joiners.pop(tp.partition, None)  # its state is durable in the changelog already

    def _read_changelog(self, partition: int) -> list[tuple[str, bytes | None]]:
        reader = Consumer(
            {**self._kafka, "group.id": f"restore-{uuid.uuid4().hex}", "enable.auto.commit": False}
        )
        try:
            _, high = reader.get_watermark_offsets(
                TopicPartition(self.topics.changelog, partition), timeout=10
            )
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
