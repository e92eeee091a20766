"""The camera side of a fault run: streams' own publisher (idempotent, store-and-forward spool) on a thread,
publishing a known list of frames at a rate, with poison records mixed in, restartable on request.

A restart closes the publisher as ``lineguard camera`` does on SIGTERM (what could not be delivered goes to
the spool) and opens a new one on the same spool directory, which sends the spooled frames first.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer

from chaos.corpus import BadCase
from chaos.kafka_io import Landed
from schemas.records import Frame
from schemas.serde import AvroRecordSerializer
from streams.publisher import CloseReport, FramePublisher, PublisherOptions
from streams.spool import DiskSpool, SpoolPolicy

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ProducerTotals:
    published: int = 0
    delivered: int = 0
    failed: int = 0
    spool_dropped: int = 0
    restarts: int = 0
    left_in_spool: int = 0
    undelivered: int = 0

    def add(self, publisher: FramePublisher, report: CloseReport) -> None:
        stats = publisher.stats
        self.published += stats.published
        self.delivered += report.delivered
        self.failed += report.failed
        self.undelivered += report.undelivered
        self.spool_dropped += stats.spool_dropped
        self.left_in_spool = report.in_spool


@dataclass(slots=True)
class ProducerThread:
    kafka_config: dict[str, Any]
    topic: str
    frames: list[Frame]
    fps: float
    spool_dir: Path
    spool_max_bytes: int
    bad_cases: dict[int, BadCase]  # frame index -> poison record sent just before that frame
    # Stamp each frame's captured_at when it is sent (a capture->result latency then means something);
    # off, the frames keep the times they were built with.
    stamp_on_send: bool = False
    totals: ProducerTotals = field(default_factory=ProducerTotals)
    bad_landed: list[Landed] = field(default_factory=list)
    bad_failed: int = 0
    error: BaseException | None = None
    _restart: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-producer", daemon=True)
        self._thread.start()

    def request_restart(self) -> None:
        self._restart.set()

    def join(self, timeout_s: float) -> bool:
        assert self._thread is not None
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _publisher(self) -> FramePublisher:
        spool = DiskSpool(self.spool_dir, max_bytes=self.spool_max_bytes, policy=SpoolPolicy.drop_oldest)
        return FramePublisher(
            PublisherOptions(topic=self.topic), self.kafka_config, AvroRecordSerializer(Frame), spool=spool
        )

    def _run(self) -> None:
        try:
            self._publish_all()
        except BaseException as exc:  # reported by the harness, never swallowed
            log.exception("producer thread failed")
            self.error = exc

    def _publish_all(self) -> None:
        raw = Producer({**self.kafka_config, "enable.idempotence": True, "message.timeout.ms": 600_000})
        publisher = self._publisher()
        period = 1.0 / self.fps
        next_at = time.monotonic()
        for index, frame in enumerate(self.frames):
            if self._restart.is_set():
                self._restart.clear()
                self.totals.add(publisher, publisher.close(timeout_s=30.0))
                self.totals.restarts += 1
                log.info("producer restarted at frame %d", index)
                publisher = self._publisher()
            case = self.bad_cases.get(index)
            if case is not None:
                raw.produce(
                    self.topic,
                    key=case.key,
                    value=case.value,
                    headers=list(case.headers),
                    on_delivery=self._on_bad_delivery,
                )
                raw.poll(0)
            publisher.publish(replace(frame, captured_at=datetime.now(UTC)) if self.stamp_on_send else frame)
            next_at += period
            while (wait := next_at - time.monotonic()) > 0:
                publisher.poll(min(wait, 0.05))
            if wait < -5 * period:
                next_at = time.monotonic()  # fell behind (e.g. blocked on the spool): do not burst
        if (
            self._restart.is_set()
        ):  # asked for after the last frame: restart anyway, the spool must survive it
            self._restart.clear()
            self.totals.add(publisher, publisher.close(timeout_s=30.0))
            self.totals.restarts += 1
            publisher = self._publisher()
        # Deliver the rest: the broker may be restarting right now, so allow for it.
        self.totals.add(publisher, publisher.close(timeout_s=180.0))
        if raw.flush(180.0):
            self.bad_failed += len(raw)

    def _on_bad_delivery(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self.bad_failed += 1
            return
        self.bad_landed.append(Landed(message.partition(), message.offset()))
