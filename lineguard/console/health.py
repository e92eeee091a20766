"""Per-line health figures the tiles show next to MongoDB's counts: the workers' consumer lag (records and
seconds, per line of the oldest waiting frame) and the number of dead letters.

Both come from the broker, not MongoDB, and cost a few round trips, so one snapshot is kept for
``max_age_s`` and shared by every browser asking in that time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # both load with the first health check: the console starts without the Kafka client
    from confluent_kafka import Consumer

    from lineguard.lag.exporter import LagReader

log = logging.getLogger(__name__)


class BrokerHealth:
    def __init__(
        self,
        kafka_config: dict[str, Any],
        worker_group: str,
        frames_topic: str,
        dead_letter_topic: str,
        max_age_s: float = 5.0,
    ) -> None:
        self._kafka_config = kafka_config
        self._group = worker_group
        self._frames_topic = frames_topic
        self._dead_letter_topic = dead_letter_topic
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._taken = -1e9
        self._cached: dict[str, Any] = {}
        self._reader: LagReader | None = None
        self._consumer: Consumer | None = None

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
            if self._consumer is not None:
                self._consumer.close()

    def snapshot(self) -> dict[str, Any]:
        """``{"lag": {...} | None, "dead_letters": int | None}``; None where the broker could not say."""
        with self._lock:
            if time.monotonic() - self._taken < self._max_age_s:
                return self._cached
            self._cached = {"lag": self._lag(), "dead_letters": self._dead_letters()}
            self._taken = time.monotonic()
            return self._cached

    def _lag(self) -> dict[str, Any] | None:
        # prometheus_client and the Kafka client load with the first check.
        from lineguard.lag.exporter import LagReader
        from schemas.errors import LineguardError

        try:
            if self._reader is None:
                self._reader = LagReader(self._kafka_config, self._group, self._frames_topic, timeout_s=2.0)
            snapshot = self._reader.read()
        except (LineguardError, Exception) as exc:  # a broker hiccup must not break the page: no figure
            log.debug("console: no lag figure (%s)", exc)
            return None
        return {
            "group": self._group,
            "records": snapshot.records,
            "seconds": round(snapshot.backlog_seconds, 1),
            "line_seconds": {line: round(s, 1) for line, s in snapshot.line_seconds().items()},
        }

    def _dead_letters(self) -> int | None:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        try:
            if self._consumer is None:
                self._consumer = Consumer(
                    {
                        **self._kafka_config,
                        "group.id": "lineguard-console-health",
                        "enable.auto.commit": False,
                    }
                )
            metadata = self._consumer.list_topics(self._dead_letter_topic, timeout=2.0)
            topic = metadata.topics.get(self._dead_letter_topic)
            if topic is None or topic.error is not None:
                return 0
            total = 0
            for number in topic.partitions:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._dead_letter_topic, number), timeout=2.0
                )
                total += high - low
            return total
        except KafkaException as exc:
            log.debug("console: no dead-letter figure (%s)", exc)
            return None
