"""The live feed: one Kafka consumer thread on the defect-events topic fans events out to browser streams.

The consumer never joins a group (``assign`` only, nothing committed): every console process sees every event,
and a restart starts from the newest events again, primed with the last ``backlog`` per partition so a page
opened after a burst is not empty. Each browser stream has a bounded queue; when a slow browser lets it fill
(50 defects/s and more), further events are not queued but counted, and the stream sends that count as one
"n more" message instead of freezing the page.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas.errors import SerializationError
from schemas.records import DefectEvent
from schemas.serde import AvroRecordDeserializer

if TYPE_CHECKING:  # the Kafka client loads with the feed's thread
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient

log = logging.getLogger(__name__)

STREAM_QUEUE = 100  # events one browser may have pending before the rest are only counted
RECENT = 50  # events kept to greet a newly opened page


def event_json(event: DefectEvent, received_ms: float) -> dict[str, Any]:
    """What the browser needs of one event: identity, place, model, verdict, regions with crops, latency."""
    detected = event.detected_at.astimezone(UTC)
    return {
        "event_id": event.event_id,
        "camera_id": event.camera_id,
        "line_id": event.line_id,
        "station_id": event.station_id,
        "frame_number": event.frame_number,
        "part_id": event.part_id,
        "captured_at": event.captured_at.astimezone(UTC).isoformat(),
        "detected_at": detected.isoformat(),
        "latency_ms": round((event.detected_at - event.captured_at).total_seconds() * 1000, 1),
        "model": {"name": event.model.name, "version": event.model.version},
        "verdict": event.verdict.value,
        "regions": [
            {
                "label": r.label,
                "score": round(r.score, 4),
                "box": {k: r.box.to_dict()[k] for k in ("x_min", "y_min", "x_max", "y_max")},
                "crop": base64.b64encode(r.crop_jpeg).decode() if r.crop_jpeg else None,
            }
            for r in event.regions
        ],
        "received_ms": received_ms,  # console clock, for the benchmark's delay figure
    }


@dataclass(eq=False)  # identity equality: streams live in a set
class Stream:
    """One browser's queue; ``dropped`` counts events that did not fit since the last "n more"."""

    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(STREAM_QUEUE))
    dropped: int = 0


class LiveFeed:
    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        backlog: int = 20,
        registry: SchemaRegistryClient | None = None,
    ) -> None:
        self._kafka_config = kafka_config
        self._registry = registry
        self.topic = topic
        self._backlog = backlog
        self._streams: set[Stream] = set()
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.events_seen = 0
        self.malformed = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="console-live-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        # An unexpected failure (a broker restart mid-call) must not end the feed for the process's life.
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:
                log.warning("live feed: %s: %s; restarting in 2 s", type(exc).__name__, exc)
                self._stop.wait(2.0)

    def _consume(self) -> None:
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        consumer = Consumer(
            {
                **self._kafka_config,
                "group.id": "lineguard-console-live",  # assign() only: no membership, no commits
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,  # a defect should reach the page well inside a second
            }
        )
        deserialize = AvroRecordDeserializer(DefectEvent, self._registry)
        try:
            assigned = self._assign_tail(consumer, TopicPartition)
            while not self._stop.is_set():
                if not assigned:
                    self._stop.wait(1.0)  # the topic does not exist yet: look again
                    assigned = self._assign_tail(consumer, TopicPartition)
                    continue
                for message in consumer.consume(500, timeout=0.2):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("live feed: %s", error.str())
                        continue
                    value = message.value()
                    if value is None:  # a tombstone: nothing to show
                        continue
                    try:
                        event = deserialize(value)
                    except SerializationError as exc:
                        self.malformed += 1
                        log.warning("live feed: skipping a malformed defect event: %s", exc)
                        continue
                    self._publish(event_json(event, time.time() * 1000))
        finally:
            consumer.close()

    def _assign_tail(self, consumer: Consumer, topic_partition: type[TopicPartition]) -> bool:
        metadata = consumer.list_topics(self.topic, timeout=5)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return False
        partitions = []
        for number in topic.partitions:
            low, high = consumer.get_watermark_offsets(topic_partition(self.topic, number), timeout=5)
            partitions.append(topic_partition(self.topic, number, max(low, high - self._backlog)))
        consumer.assign(partitions)
        log.info("live feed on %s (%d partitions)", self.topic, len(partitions))
        return True

    def _publish(self, item: dict[str, Any]) -> None:
        self.events_seen += 1
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._fan_out, item)

    def _fan_out(self, item: dict[str, Any]) -> None:
        self._recent.append(item)
        for stream in self._streams:
            try:
                stream.queue.put_nowait(item)
            except asyncio.QueueFull:
                stream.dropped += 1

    async def stream(self, heartbeat_s: float = 15.0) -> AsyncIterator[str]:
        """Server-sent events for one browser: the recent events, then each new one as it arrives."""
        stream = Stream()
        self._streams.add(stream)
        try:
            yield _sse("hello", {"topic": self.topic, "at": datetime.now(UTC).isoformat()})
            for item in sorted(self._recent, key=lambda i: i["detected_at"]):
                yield _sse("defect", item)
            while True:
                if stream.dropped:
                    count, stream.dropped = stream.dropped, 0
                    yield _sse("more", {"count": count})
                try:
                    item = await asyncio.wait_for(stream.queue.get(), timeout=heartbeat_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield _sse("defect", item)
        finally:
            self._streams.discard(stream)


def _sse(kind: str, data: dict[str, Any]) -> str:
    import json

    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
