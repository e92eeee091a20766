"""A recorded range of the frames topic, replayed through a shadow worker.

The range is resolved per partition into ``[start, end)`` offsets: by record time with
``offsets_for_times`` (the first offset at or after a time; none: the end), or by offsets (clamped to the
high watermark). A range that starts before what retention kept is refused rather than replayed short.

The worker is an ordinary one in a fresh consumer group: the start offsets are committed for that group
before it joins, so it starts exactly there, and :class:`RecordFilter` completes every record at or past a
partition's end (and those of other lines or cameras) with no output. The replay is over once the group's
committed offsets reached every end: each record in range was inspected and written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from schemas.errors import ConfigurationError, ServiceUnavailableError
from schemas.records import Frame

_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class PartitionRange:
    partition: int
    start: int
    end: int  # exclusive

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """What the user asked for; every field None = everything retained."""

    since: datetime | None = None
    until: datetime | None = None
    start_offset: int | None = None
    end_offset: int | None = None
    partitions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.start_offset is not None:
            raise ConfigurationError(
                "choose the start by time (--from) or by offset (--from-offset), not both"
            )
        if self.until is not None and self.end_offset is not None:
            raise ConfigurationError("choose the end by time (--to) or by offset (--to-offset), not both")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ConfigurationError(f"empty range: --to {self.until} is not after --from {self.since}")
        if (
            self.start_offset is not None
            and self.end_offset is not None
            and self.end_offset <= self.start_offset
        ):
            raise ConfigurationError(
                f"empty range: --to-offset {self.end_offset} <= --from-offset {self.start_offset}"
            )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _first_timestamp_ms(consumer: Consumer, topic: str, partition: int, offset: int) -> int | None:
    """The record time of the record at ``offset`` (the oldest one retention kept)."""
    consumer.assign([TopicPartition(topic, partition, offset)])
    try:
        deadline = time.monotonic() + _TIMEOUT_S
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return int(message.timestamp()[1])
        return None
    finally:
        consumer.unassign()


def resolve_range(kafka_config: dict[str, Any], topic: str, request: RangeRequest) -> list[PartitionRange]:
    """Offsets ``[start, end)`` per partition; ConfigurationError for an unknown topic, a range past
    retention, or one that holds no record."""
    consumer = Consumer(
        {**kafka_config, "group.id": f"lineguard-shadow-range-{time.time_ns()}", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=_TIMEOUT_S)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise ConfigurationError(f"frames topic {topic!r} does not exist")
        partitions = sorted(described.partitions)
        if request.partitions is not None:
            unknown = sorted(set(request.partitions) - set(partitions))
            if unknown:
                raise ConfigurationError(
                    f"topic {topic} has no partition {unknown[0]} (it has {len(partitions)})"
                )
            partitions = sorted(request.partitions)
        ranges = [_partition_range(consumer, topic, p, request) for p in partitions]
    except KafkaException as exc:
        raise ServiceUnavailableError(f"cannot read the offsets of {topic}: {exc}") from exc
    finally:
        consumer.close()
    if not any(r.size for r in ranges):
        raise ConfigurationError(f"the requested range of {topic} holds no records")
    return ranges


def _by_time(consumer: Consumer, topic: str, partition: int, moment: datetime, high: int) -> int:
    found = consumer.offsets_for_times([TopicPartition(topic, partition, _ms(moment))], timeout=_TIMEOUT_S)[0]
    return high if found.offset < 0 else int(found.offset)


def _partition_range(consumer: Consumer, topic: str, partition: int, request: RangeRequest) -> PartitionRange:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=_TIMEOUT_S)
    if request.start_offset is not None:
        if request.start_offset < low:
            raise ConfigurationError(
                f"offset {request.start_offset} of {topic}[{partition}] is past retention "
                f"(the oldest kept is {low})"
            )
        start = min(request.start_offset, high)
    elif request.since is not None:
        if low > 0:  # records were deleted: did retention take part of the range?
            oldest = _first_timestamp_ms(consumer, topic, partition, low)
            if oldest is not None and oldest > _ms(request.since):
                raise ConfigurationError(
                    f"--from {request.since.isoformat()} is past retention on {topic}[{partition}] "
                    f"(the oldest record kept is from {datetime.fromtimestamp(oldest / 1000).isoformat()})"
                )
        start = _by_time(consumer, topic, partition, request.since, high)
    else:
        start = low
    if request.end_offset is not None:
        end = min(request.end_offset, high)
    elif request.until is not None:
        end = _by_time(consumer, topic, partition, request.until, high)
    else:
        end = high
    return PartitionRange(partition, start, max(start, end))


def commit_start(kafka_config: dict[str, Any], group: str, topic: str, ranges: list[PartitionRange]) -> None:
    """Commit each partition's start for ``group`` (not yet joined by anyone), so its worker starts there."""
    consumer = Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = [TopicPartition(topic, r.partition, r.start) for r in ranges]
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"cannot commit the replay's start offsets: {exc}") from exc
    finally:
        consumer.close()


def committed(kafka_config: dict[str, Any], group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    consumer = Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=_TIMEOUT_S)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def wait_replayed(
    kafka_config: dict[str, Any],
    group: str,
    topic: str,
    ranges: list[PartitionRange],
    still_running: Callable[[], bool],
    timeout_s: float,
    interval_s: float = 0.5,
) -> bool:
    """Until the group committed every partition's end (True), the worker stopped, or the timeout."""
    deadline = time.monotonic() + timeout_s
    ends = {r.partition: r.end for r in ranges}
    while time.monotonic() < deadline and still_running():
        try:
            positions = committed(kafka_config, group, topic, list(ends))
        except KafkaException:
            positions = {}
        if positions and all(positions.get(p, -1) >= end for p, end in ends.items()):
            return True
        time.sleep(interval_s)
    return False


class RecordFilter:
    """Which records a shadow worker inspects: inside the replay's range, of the line and camera asked for.

    ``sample_every`` = n inspects one record in n (by offset), to bound the shadow's share of the CPU
    beside production. The camera is the record key (cameras publish with key = camera id); the line needs
    the Avro value, read only when a line is asked for. A record that cannot be read is accepted: the
    worker's decoder turns it into a (shadow) dead letter with the reason.
    """

    def __init__(
        self,
        ends: dict[int, int] | None = None,
        line: str | None = None,
        camera: str | None = None,
        deserializer: Callable[[bytes], Frame | None] | None = None,
        sample_every: int = 1,
    ) -> None:
        if sample_every < 1:
            raise ConfigurationError(f"--sample-every must be >= 1, got {sample_every}")
        self._sample_every = sample_every
        self._ends = ends
        self._line = line
        self._camera = camera.encode() if camera is not None else None
        self._deserializer = deserializer

    def __call__(self, message: Message) -> bool:
        partition, offset = message.partition(), message.offset()
        if self._ends is not None and (
            partition is None or offset is None or offset >= self._ends.get(partition, 0)
        ):
            return False
        # Every n-th record by offset: a fixed share of the line's load, the same records on every replay.
        if self._sample_every > 1 and (offset or 0) % self._sample_every != 0:
            return False
        if self._camera is not None and message.key() is not None and message.key() != self._camera:
            return False
        if self._line is None or self._deserializer is None:
            return True
        try:
            frame = self._deserializer(message.value() or b"")
        except Exception:  # unreadable: the decoder dead-letters it with its reason
            return True
        return frame is None or frame.line_id == self._line
