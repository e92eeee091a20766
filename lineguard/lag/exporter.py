"""Consumer lag from the broker's committed offsets, in records and in seconds, per partition and per line.

The workers export their own lag too, but that series vanishes exactly when every worker is down, which is
the case an alert exists for. This exporter never joins the group: it asks the group coordinator for the
committed offsets (OffsetFetch), the partition leaders for the watermarks, and reads the *oldest unprocessed*
frame of each lagging partition (the record at the committed offset) to turn records into seconds: now minus
that frame's capture time. It also reads the newest frame of each partition, which says when each line last
published; a line with no new frame for ``silent_after_s`` is flagged silent.

Only two records per partition are fetched per collection, whatever the lag, so the exporter stays cheap on
a topic of large frames. The newest record names one line per partition; a line is remembered once seen, so
a line whose cameras share a partition with a busier line can look silent later than it is (never sooner
than ``silent_after_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.errors import LineguardError
from schemas.records import Frame
from schemas.serde import AvroRecordDeserializer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """What the broker says about one partition of the frames topic for one group."""

    partition: int
    committed: int  # the next offset the group will process; the low watermark when it never committed
    high: int
    oldest_captured_at: datetime | None  # capture time of the frame at ``committed``, if lagging and readable
    oldest_line: str | None

    @property
    def records(self) -> int:
        return max(0, self.high - self.committed)

    def seconds(self, now: datetime) -> float:
        if self.records == 0 or self.oldest_captured_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_captured_at).total_seconds())


@dataclass(slots=True)
class LagSnapshot:
    """One collection: every partition's lag, and the last frame time seen per line."""

    taken_at: datetime
    partitions: list[PartitionLag] = field(default_factory=list)
    last_frame_at: dict[str, datetime] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def backlog_seconds(self) -> float:
        return max((p.seconds(self.taken_at) for p in self.partitions), default=0.0)

    def line_seconds(self) -> dict[str, float]:
        """Per line: the largest lag in seconds of the partitions whose oldest frame is that line's."""
        lines: dict[str, float] = {}
        for p in self.partitions:
            if p.oldest_line is not None:
                lines[p.oldest_line] = max(lines.get(p.oldest_line, 0.0), p.seconds(self.taken_at))
        return lines


class LagReader:
    """Reads committed offsets, watermarks and the frames at both ends of each partition's backlog."""

    def __init__(
        self,
        client_config: dict[str, Any],
        group: str,
        topic: str,
        deserializer: AvroRecordDeserializer[Frame] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.group = group
        self.topic = topic
        self._timeout_s = timeout_s
        self._deserializer = deserializer if deserializer is not None else AvroRecordDeserializer(Frame)
        # group.id names the group whose offsets are fetched; without subscribe() it never joins the group.
        self._offsets = Consumer({**client_config, "group.id": group, "enable.auto.commit": False})
        # A second consumer, of no group, fetches single records by offset.
        self._records = Consumer(
            {**client_config, "group.id": f"{group}.lag-reader", "enable.auto.commit": False}
        )
        self._last_frame_at: dict[str, datetime] = {}

    def close(self) -> None:
        self._offsets.close()
        self._records.close()

    def read(self) -> LagSnapshot:
        metadata = self._offsets.list_topics(self.topic, timeout=self._timeout_s)
        described = metadata.topics.get(self.topic)
        if described is None or described.error is not None or not described.partitions:
            raise LineguardError(f"topic {self.topic} does not exist (or has no partitions)")
        wanted = [TopicPartition(self.topic, number) for number in sorted(described.partitions)]
        committed = self._offsets.committed(wanted, timeout=self._timeout_s)
        snapshot = LagSnapshot(taken_at=datetime.now(UTC))
        for tp in committed:
            low, high = self._offsets.get_watermark_offsets(
                TopicPartition(self.topic, tp.partition), timeout=self._timeout_s
            )
            position = tp.offset if tp.offset not in (OFFSET_INVALID,) and tp.offset >= 0 else low
            position = max(position, low)  # committed below the retention horizon: the rest is gone
            oldest = self._frame_at(tp.partition, position) if position < high else None
            newest = self._frame_at(tp.partition, high - 1) if high > low else None
            if newest is not None:
                self._remember(newest)
            if oldest is not None:
                self._remember(oldest)
            snapshot.partitions.append(
                PartitionLag(
                    partition=tp.partition,
                    committed=position,
                    high=high,
                    oldest_captured_at=oldest.captured_at if oldest else None,
                    oldest_line=oldest.line_id if oldest else None,
                )
            )
        snapshot.last_frame_at = dict(self._last_frame_at)
        return snapshot

    def _remember(self, frame: Frame) -> None:
        seen = self._last_frame_at.get(frame.line_id)
        if seen is None or frame.captured_at > seen:
            self._last_frame_at[frame.line_id] = frame.captured_at

    def _frame_at(self, partition: int, offset: int) -> Frame | None:
        """The frame at one offset, or None when it cannot be read (a dead letter's job, not ours)."""
        self._records.assign([TopicPartition(self.topic, partition, offset)])
        deadline = time.monotonic() + self._timeout_s
        try:
            while time.monotonic() < deadline:
                message = self._records.poll(min(1.0, self._timeout_s))
                if message is None:
                    continue
                if message.error() is not None:
                    log.debug("lag reader: %s", message.error())
                    continue
                value = message.value()
                if value is None:
                    return None
                try:
                    return self._deserializer(value)
                except LineguardError as exc:
                    log.warning("%s[%d]@%d is not a readable frame: %s", self.topic, partition, offset, exc)
                    return None
            log.warning("%s[%d]@%d: no record within %.0f s", self.topic, partition, offset, self._timeout_s)
            return None
        finally:
            self._records.unassign()


class LagMetrics:
    """The exporter's Prometheus series, refreshed from each :class:`LagSnapshot`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.records = Gauge(
            "lineguard_lag_records",
            "Committed offset to high watermark",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.seconds = Gauge(
            "lineguard_lag_seconds",
            "Age of the oldest unprocessed frame (now - its capture time); 0 when caught up",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.total_records = Gauge(
            "lineguard_lag_total_records",
            "Records not yet processed, all partitions",
            ["group", "topic"],
            registry=r,
        )
        self.backlog_seconds = Gauge(
            "lineguard_lag_backlog_seconds",
            "The largest partition lag in seconds",
            ["group", "topic"],
            registry=r,
        )
        self.line_seconds = Gauge(
            "lineguard_lag_line_seconds",
            "Age of the oldest unprocessed frame of each line",
            ["group", "line"],
            registry=r,
        )
        self.line_last_frame_age = Gauge(
            "lineguard_lag_line_last_frame_age_seconds",
            "Since the newest frame seen of each line",
            ["line"],
            registry=r,
        )
        self.line_silent = Gauge(
            "lineguard_lag_line_silent",
            "1 when a line published no frame for --silent-after-s",
            ["line"],
            registry=r,
        )
        self.up = Gauge("lineguard_lag_up", "1 when the last collection reached the broker", registry=r)
        self.errors = Counter("lineguard_lag_collect_errors", "Collections that failed", registry=r)

    def registry_text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def update(self, snapshot: LagSnapshot, group: str, topic: str, silent_after_s: float) -> None:
        now = snapshot.taken_at
        for p in snapshot.partitions:
            self.records.labels(group, topic, str(p.partition)).set(p.records)
            self.seconds.labels(group, topic, str(p.partition)).set(p.seconds(now))
        self.total_records.labels(group, topic).set(snapshot.records)
        self.backlog_seconds.labels(group, topic).set(snapshot.backlog_seconds)
        lines = snapshot.line_seconds()
        for line in snapshot.last_frame_at:
            self.line_seconds.labels(group, line).set(lines.get(line, 0.0))
        for line, last in snapshot.last_frame_at.items():
            age = max(0.0, (now - last).total_seconds())
            self.line_last_frame_age.labels(line).set(age)
            self.line_silent.labels(line).set(1 if age > silent_after_s else 0)
        self.up.set(1)


def run_exporter(
    reader: LagReader,
    metrics: LagMetrics,
    interval_s: float,
    silent_after_s: float,
    stop: threading.Event,
    on_snapshot: Callable[[LagSnapshot], None] | None = None,
) -> None:
    """Collect every ``interval_s`` until ``stop`` is set; a broker outage sets ``lineguard_lag_up`` to 0."""
    while not stop.is_set():
        try:
            snapshot = reader.read()
        except (KafkaException, LineguardError) as exc:
            log.warning("lag collection failed: %s", exc)
            metrics.up.set(0)
            metrics.errors.inc()
        else:
            metrics.update(snapshot, reader.group, reader.topic, silent_after_s)
            if on_snapshot is not None:
                on_snapshot(snapshot)
        stop.wait(interval_s)
