"""The demo's view of Kafka: a thread that reads the output topics into a :class:`DemoTally`, the worker
group's consumer lag, and a wait until the worker owns the frames topic.

The watcher starts every output partition at its high watermark of the moment it is created, so records
of earlier demo runs on the same topics are never counted. Latency is capture time to the result's Kafka
timestamp (set by the worker's producer when it wrote the result), so the watcher's own polling does not
add to it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, Message, TopicPartition

from lineguard.demo.tally import DemoTally
from schemas.errors import LineguardError, ServiceUnavailableError
from schemas.records import DeadLetter, InspectionResult
from schemas.serde import AvroRecordDeserializer
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

_METADATA_TIMEOUT_S = 10.0


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        raise ServiceUnavailableError(f"topic {topic} is not in the Kafka metadata")
    return sorted(described.partitions)


def high_watermark(
    consumer: Consumer, topic: str, partition: int, timeout_s: float = _METADATA_TIMEOUT_S
) -> int:
    """The partition's high watermark; retried, because a topic created a moment ago may not have a
    leader in this client's metadata yet (NOT_LEADER_FOR_PARTITION)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            return int(high)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def result_latency_s(message_timestamp_ms: int | None, captured_at: datetime) -> float:
    """Capture time to the result record's timestamp (or to now when the record has none)."""
    if message_timestamp_ms is None:
        return (datetime.now(UTC) - captured_at).total_seconds()
    return message_timestamp_ms / 1000.0 - captured_at.timestamp()


class OutputWatcher:
    """Reads the results, defect-events and dead-letter topics on a daemon thread until :meth:`stop`."""

    def __init__(self, kafka_config: Mapping[str, Any], topics: TopicNames, tally: DemoTally) -> None:
        self._tally = tally
        self._topics = topics
        self._results = AvroRecordDeserializer(InspectionResult)
        self._dead_letters = AvroRecordDeserializer(DeadLetter)
        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"lineguard-demo-watch-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._consumer.assign(self._start_positions())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-watch", daemon=True)
        self.error: BaseException | None = None
        self.unreadable = 0

    def _start_positions(self) -> list[TopicPartition]:
        positions = []
        for topic in (self._topics.results, self._topics.defect_events, self._topics.dead_letters):
            for partition in _partitions(self._consumer, topic):
                positions.append(
                    TopicPartition(topic, partition, high_watermark(self._consumer, topic, partition))
                )
        return positions

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for message in self._consumer.consume(500, timeout=0.2):
                    if message.error() is None:
                        self._dispatch(message)
        except BaseException as exc:  # surfaced by the demo loop, which owns the user-facing error
            log.exception("output watcher failed")
            self.error = exc

    def _dispatch(self, message: Message) -> None:
        topic = message.topic()
        if topic == self._topics.defect_events:
            self._tally.add_defect_event()
            return
        try:
            if topic == self._topics.results:
                result = self._results(message.value())
                assert result is not None
                kind, stamp = message.timestamp()
                stamp_ms = None if kind == TIMESTAMP_NOT_AVAILABLE else stamp
                self._tally.add_result(result, result_latency_s(stamp_ms, result.captured_at))
            elif topic == self._topics.dead_letters:
                letter = self._dead_letters(message.value())
                assert letter is not None
                self._tally.add_dead_letter(letter.reason.value)
        except LineguardError:
            self.unreadable += 1  # not ours to judge here; the count shows up in the summary


class LagProbe:
    """Consumer lag of a group on a topic: high watermarks minus committed offsets, summed."""

    def __init__(self, kafka_config: Mapping[str, Any], group_id: str, topic: str) -> None:
        # A consumer that never subscribes does not join the group: it only reads the group's offsets.
        self._consumer = Consumer({**kafka_config, "group.id": group_id, "enable.auto.commit": False})
        self._topic = topic
        self._partitions = [TopicPartition(topic, p) for p in _partitions(self._consumer, topic)]

    def measure(self, timeout_s: float = 2.0) -> int | None:
        """Records of the topic not yet committed by the group; None when Kafka did not answer in time."""
        try:
            committed = self._consumer.committed(self._partitions, timeout=timeout_s)
            lag = 0
            for position in committed:
                high = high_watermark(self._consumer, position.topic, position.partition, timeout_s)
                lag += high - max(position.offset, 0)
            return lag
        except KafkaException:
            return None

    def close(self) -> None:
        self._consumer.close()


def wait_for_assignment(
    kafka_config: Mapping[str, Any],
    group_id: str,
    topic: str,
    timeout_s: float,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Wait until the group is stable and its members own every partition of ``topic``.

    ``alive`` (a callable) lets the caller give up early, e.g. when the worker process has exited.
    """
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(dict(kafka_config))
    probe = Consumer({**kafka_config, "group.id": f"{group_id}-probe"})
    try:
        wanted = set(_partitions(probe, topic))
    finally:
        probe.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            description = admin.describe_consumer_groups([group_id])[group_id].result(timeout=5)
        except KafkaException:
            description = None
        if description is not None and description.state == ConsumerGroupState.STABLE:
            owned = {
                tp.partition
                for member in description.members
                for tp in (member.assignment.topic_partitions if member.assignment else [])
                if tp.topic == topic
            }
            if owned >= wanted:
                return True
        time.sleep(0.3)
    return False
