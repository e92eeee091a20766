"""The sink's loop: consume a batch of results, write it in one PostgreSQL transaction, then commit offsets.

Offsets are committed (synchronously) only after PostgreSQL's COMMIT returned, so a crash anywhere replays
at most the batch in flight, and the writer's upserts make the replay leave the same rows. When PostgreSQL
goes away mid-batch the transaction is rolled back, the partitions are paused (the consumer keeps polling,
so it stays in its group) and the same batch is written again once a new connection succeeds: an outage
pauses the sink, it never drops or skips a batch. Undecodable records are stored in ``rejected_records`` in
the same transaction as their batch and counted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from infra.consumer_loop import Interrupted as Interrupted
from infra.consumer_loop import manual_commit_config, records, run_batches, through_outages
from infra.postgres_access import connect
from infra.sinks import SinkBackpressure
from mes.migrations import migrate
from mes.writer import PostgresWriter, Rejected
from schemas.records import InspectionResult
from schemas.serde import AvroRecordDeserializer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SinkStats:
    rows: int = 0
    batches: int = 0
    rejected: int = 0
    outages: int = 0


@dataclass(frozen=True, slots=True)
class SinkConfig:
    postgres_uri: str
    topic: str
    group_id: str = "lineguard-postgres-sink"
    batch_size: int = 2_000
    max_wait_s: float = 0.5
    window_seconds: int = 60
    startup_timeout_s: float = 30.0
    outage_timeout_s: float = 3_600.0  # give up (exit 1) after an hour without PostgreSQL
    # static group membership: a sink restarted with the same id (after a crash) takes its partitions back
    # at once instead of waiting for the dead member's session to time out
    instance_id: str | None = None


class PostgresSink:
    def __init__(
        self, kafka_config: dict[str, Any], config: SinkConfig, registry: SchemaRegistryClient | None = None
    ) -> None:
        self.config = config
        self.stats = SinkStats()
        # single-object encoding, or Confluent framing when the records were written through a registry
        self._deserialize = AvroRecordDeserializer(InspectionResult, registry)
        self._connection = connect(config.postgres_uri, config.startup_timeout_s)
        migrate(self._connection)
        self._writer = PostgresWriter(self._connection, config.window_seconds)
        consumer_config = manual_commit_config(kafka_config, config.group_id)
        consumer_config["enable.partition.eof"] = False
        if config.instance_id:
            consumer_config["group.instance.id"] = config.instance_id
        self._consumer = Consumer(consumer_config)

    def run(self, stop: threading.Event) -> SinkStats:
        self._consumer.subscribe([self.config.topic])
        try:
            run_batches(
                self._consumer,
                stop,
                lambda messages: self._handle(messages, stop),
                self.config.batch_size,
                self.config.max_wait_s,
                "PostgreSQL",
            )
        finally:
            self._connection.close()
        return self.stats

    def _decode(
        self, messages: list[Message]
    ) -> tuple[list[InspectionResult], list[Rejected], list[TopicPartition]]:
        results: list[InspectionResult] = []
        rejected: list[Rejected] = []
        next_offsets: dict[tuple[str, int], int] = {}
        for position, message in records(messages):
            topic, partition, offset = position.topic, position.partition, position.offset
            next_offsets[(topic, partition)] = offset + 1
            try:
                results.append(self._deserialize(message.value()))  # type: ignore[arg-type]
            except Exception as exc:  # any bad record is kept and counted, never a crash
                log.warning("rejected %s[%d]@%d: %s", topic, partition, offset, exc)
                rejected.append(Rejected(topic, partition, offset, str(exc)[:500], message.value()))
        commits = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()
        ]
        return results, rejected, commits

    def _handle(self, messages: list[Message], stop: threading.Event) -> None:
        results, rejected, commits = self._decode(messages)
        if not commits:
            return
        self._write_through_outages(results, rejected, stop)
        self._consumer.commit(offsets=commits, asynchronous=False)
        self.stats.rows += len(results)
        self.stats.rejected += len(rejected)
        self.stats.batches += 1

    def _write_through_outages(
        self, results: list[InspectionResult], rejected: list[Rejected], stop: threading.Event
    ) -> None:
        def outage_started() -> None:
            self.stats.outages += 1

        through_outages(
            self._consumer,
            lambda: self._writer.write_batch(results, rejected),
            # connection lost (the writer's backpressure): an outage, not a data problem
            (SinkBackpressure,),
            stop=stop,
            timeout_s=self.config.outage_timeout_s,
            what="PostgreSQL",
            on_outage=outage_started,
            recover=self._reconnect,
            describe=lambda exc: str(exc).strip()[:200],
        )

    def _reconnect(self) -> None:
        try:
            self._connection.close()
            self._connection = psycopg.connect(self.config.postgres_uri, connect_timeout=3)
            self._writer = PostgresWriter(self._connection, self.config.window_seconds)
        except psycopg.OperationalError:
            pass  # still down: the next write attempt fails fast and we come back here
