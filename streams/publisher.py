"""Publish Frame records to Kafka over a plain confluent-kafka ``Producer``.

The hot path is what a hand-written producer would do anyway (serialize, ``produce`` with a delivery
callback, ``poll(0)``), so the publisher stays close to raw confluent-kafka speed
(``bench/bench_publisher.py`` measures it).
Around it:

* idempotent producer (``enable.idempotence``, ``acks=all``), size limits derived from the same constant as
  the topics' (``schemas.topics.DEFAULT_MAX_MESSAGE_BYTES``), no compression (JPEG and PNG are compressed);
* key = camera id; headers: content type, schema name, a fresh trace per frame (``trace-id`` and a W3C
  ``traceparent`` of the camera's publish span, the same trace id in both);
* delivery callbacks counted: delivered, failed, bytes;
* images above the inline limit go to the claim-check store (GridFS) and travel by reference, or are refused
  with :class:`FrameTooLargeError` when claim-check is off: never a silent drop, never a stuck producer;
* store-and-forward: when the broker is unreachable (all brokers down, local queue full, deliveries timing
  out) frames go to a bounded on-disk spool and are sent from there, oldest first, once the broker is back.
  While anything waits in the spool, new frames queue behind it, so each camera's frames keep their order.

Everything runs on the caller's thread: delivery callbacks fire inside ``poll``; nothing here is thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from schemas.errors import FrameTooLargeError, LineguardError
from schemas.records import Frame
from streams.frame_encoding import FrameEncoder
from streams.publisher_contract import (
    DEFAULT_INLINE_LIMIT_BYTES,
    ClaimCheckStore,
    CloseReport,
    FrameSerializer,
    Headers,
    PublisherOptions,
    PublisherStats,
    is_unreachable_error,
    producer_config,
)
from streams.spool import DiskSpool, SpooledMessage, SpoolFullError, SpoolPolicy, SpoolWriteError

__all__ = [
    "DEFAULT_INLINE_LIMIT_BYTES",
    "ClaimCheckStore",
    "CloseReport",
    "FramePublisher",
    "PublisherOptions",
    "PublisherStats",
    "is_unreachable_error",
    "producer_config",
]

logger = logging.getLogger(__name__)


class FramePublisher:
    """Sends Frame records to one topic. Call :meth:`poll` when idle: callbacks and the spool keep moving."""

    def __init__(
        self,
        options: PublisherOptions,
        kafka_config: Mapping[str, Any],
        serializer: FrameSerializer,
        claim_check: ClaimCheckStore | None = None,
        spool: DiskSpool | None = None,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.stats = PublisherStats()
        self._encoder = FrameEncoder(options, serializer, claim_check, self.stats)
        self._spool = spool
        self._clock = clock
        config = producer_config(kafka_config, options)
        config["error_cb"] = self._on_error
        self._producer = producer_factory(config)
        self._next_seq = spool.next_seq if spool is not None else 0
        self._broker_down = False
        self._fatal: KafkaError | None = None
        self._spool_in_flight: set[int] = set()
        self._drain_hold = False  # a drained message failed: resend in order once nothing is in flight
        self._drain_resume_at = 0.0
        self._stop_requested = False
        self._next_failure_log_at = 0.0
        if spool is not None:
            self._sync_spool_stats()  # files quarantined while the spool recovered count as lost

    # -- publishing --------------------------------------------------------------------------------------

    def publish(self, frame: Frame) -> None:
        """Send one frame (or spool it while the broker is unreachable).

        Raises :class:`FrameTooLargeError` for a frame that cannot travel (counted in ``stats.too_large``),
        :class:`ServiceUnavailableError` when its image needs the claim-check store and the store cannot be
        reached (counted in ``stats.claim_check_failed``); both concern this frame only. Raises
        :class:`LineguardError` when the producer hit a fatal error.
        """
        if self._fatal is not None:
            raise LineguardError(f"Kafka producer failed for good: {self._fatal.str()}")
        value, headers = self._encoder.encode(frame)
        key = frame.camera_id.encode()
        seq = self._next_seq
        self._next_seq += 1
        self.stats.published += 1
        if self.spooling:
            self._spool_new(SpooledMessage(seq, self.options.topic, key, value, headers))
            self._pump()
            self._producer.poll(0)
            return
        self._produce_direct(seq, key, value, headers)

    def _produce_direct(self, seq: int, key: bytes, value: bytes, headers: Headers) -> None:
        on_delivery = partial(self._on_direct_delivery, seq, len(value), headers)
        full_since = None
        while True:
            try:
                self._producer.produce(
                    self.options.topic, value, key, headers=list(headers), on_delivery=on_delivery
                )
                break
            except BufferError:
                # librdkafka's queue is full. A healthy broker frees room within moments (backpressure: wait);
                # one that has not after the grace period is slow or gone, and the spool takes the frame.
                now = self._clock()
                full_since = now if full_since is None else full_since
                if self._spool is not None and now - full_since >= self.options.queue_full_grace_s:
                    self._enter_spooling("the producer queue stayed full")
                    self._spool_new(SpooledMessage(seq, self.options.topic, key, value, headers))
                    return
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._raise_produce_error(exc, len(value))
        self._producer.poll(0)

    def _raise_produce_error(self, exc: KafkaException, size: int) -> None:
        error: KafkaError = exc.args[0]
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self.stats.too_large += 1
            raise FrameTooLargeError(
                f"Kafka refused a {size}-byte record as too large: {error.str()}; the producer's "
                "message.max.bytes must agree with the topic's max.message.bytes"
            ) from exc
        raise LineguardError(f"cannot produce to {self.options.topic}: {error.str()}") from exc

    # -- delivery reports and client errors (called inside poll) --------------------------------------------

    def _on_direct_delivery(
        self,
        seq: int,
        size: int,
        headers: Headers,
        error: KafkaError | None,
        message: Any,
    ) -> None:
        if error is None:
            self.stats.delivered += 1
            self.stats.delivered_bytes += size
            self._broker_down = False
            return
        if self._spool is not None and is_unreachable_error(error):
            self._enter_spooling(error.str())
            # Its seq is older than anything spooled since: the spool sends it first, keeping the order.
            self._drain_hold = True
            spooled = SpooledMessage(seq, message.topic(), message.key(), message.value(), headers)
            if self._append_to_spool(spooled):
                return
        else:
            self._log_failure("delivery to %s failed for good: %s", self.options.topic, error.str())
        self.stats.failed += 1

    def _on_spool_delivery(self, seq: int, size: int, error: KafkaError | None, message: Any) -> None:
        self._spool_in_flight.discard(seq)
        assert self._spool is not None
        if error is None:
            self._spool.remove(seq)
            self.stats.drained += 1
            self.stats.delivered += 1
            self.stats.delivered_bytes += size
            if self._broker_down:
                self._broker_down = False
                logger.info("broker reachable again; draining the spool (%d messages left)", len(self._spool))
            return
        if is_unreachable_error(error):
            # Stays on disk. Resend from the oldest once everything in flight has settled, so order holds.
            self._drain_hold = True
            self._drain_resume_at = self._clock() + self.options.drain_retry_s
            self._enter_spooling(error.str())
            return
        self._log_failure("spooled frame rejected by the broker for good: %s", error.str())
        self._spool.remove(seq)
        self.stats.failed += 1

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            logger.error("fatal Kafka producer error: %s", error.str())
        elif error.code() == KafkaError._ALL_BROKERS_DOWN and self._spool is not None:
            self._enter_spooling(error.str())
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._log_failure("all brokers down, no spool: librdkafka keeps retrying until frames time out")
        else:
            logger.debug("Kafka client error (librdkafka retries): %s", error.str())

    def _enter_spooling(self, why: str) -> None:
        if not self._broker_down:
            logger.warning("broker unreachable (%s): frames go to the spool at %s", why, self._spool_dir())
        self._broker_down = True

    def _spool_dir(self) -> str:
        return str(self._spool.directory) if self._spool is not None else "-"

    # -- the spool ---------------------------------------------------------------------------------------

    def _spool_new(self, message: SpooledMessage) -> None:
        """Spool a frame publish() was given; under the block policy, wait for room (until stopped), whether
        the size cap or the disk itself is full."""
        spool = self._spool
        assert spool is not None
        started = None
        size = message.file_size
        can_wait = spool.policy is SpoolPolicy.block and size <= spool.max_bytes
        error: SpoolFullError | None = None
        while True:
            if spool.has_room_for(size) or not can_wait or self._stop_requested:
                error = self._try_spool(message)
                disk_full = isinstance(error, SpoolWriteError) and error.disk_full
                if error is None or not (disk_full and can_wait and not self._stop_requested):
                    break
            if started is None:
                started = self._clock()
                logger.warning("spool full: waiting for the broker to take frames (block policy)")
            self.poll(0.1)
        if started is not None:
            self.stats.blocked_s += self._clock() - started
        if error is not None:
            self._log_failure("lost a frame: %s", error)
            self.stats.failed += 1

    def _append_to_spool(self, message: SpooledMessage) -> bool:
        """Spool a message from a delivery callback (which cannot wait); False = the frame is lost."""
        error = self._try_spool(message)
        if error is not None:
            self._log_failure("lost a frame: %s", error)
        return error is None

    def _try_spool(self, message: SpooledMessage) -> SpoolFullError | None:
        assert self._spool is not None
        try:
            self._spool.append(message, protected=self._spool_in_flight)
        except SpoolFullError as exc:  # SpoolWriteError too: a full disk must not escape a delivery callback
            return exc
        finally:
            self._sync_spool_stats()
        self.stats.spooled += 1
        return None

    def _sync_spool_stats(self) -> None:
        spool = self._spool
        assert spool is not None
        dropped_before = self.stats.spool_dropped
        self.stats.spool_dropped = spool.dropped
        self.stats.spool_write_errors = spool.write_errors
        self.stats.spool_quarantined = spool.quarantined
        if self.stats.spool_dropped > dropped_before:
            self._log_failure("spool full: dropped the oldest frames (%d so far)", self.stats.spool_dropped)

    def _log_failure(self, message: str, *args: object) -> None:
        """Log a lost or dropped frame, but at most once a second: an outage must not flood the log."""
        now = self._clock()
        if now >= self._next_failure_log_at:
            self._next_failure_log_at = now + 1.0
            logger.error(message, *args)

    def _pump(self) -> None:
        """Hand the oldest spooled messages to librdkafka, a window at a time."""
        spool = self._spool
        if spool is None or not len(spool):
            return
        if self._drain_hold:
            # Something older failed: wait until nothing at all is in flight, then resend from the oldest.
            if len(self._producer) or self._clock() < self._drain_resume_at:
                return
            self._drain_hold = False
        room = self.options.drain_window - len(self._spool_in_flight)
        if room <= 0:
            return
        waiting = spool.oldest(room, exclude=self._spool_in_flight)
        self._sync_spool_stats()  # reading may have quarantined damaged files
        for message in waiting:
            try:
                self._producer.produce(
                    message.topic,
                    message.value,
                    message.key,
                    headers=list(message.headers),
                    on_delivery=partial(self._on_spool_delivery, message.seq, len(message.value)),
                )
            except BufferError:
                break
            except KafkaException as exc:
                self._log_failure("spooled frame cannot be produced, dropping it: %s", exc.args[0].str())
                spool.remove(message.seq)
                self.stats.failed += 1
                continue
            self._spool_in_flight.add(message.seq)

    # -- housekeeping ------------------------------------------------------------------------------------

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery callbacks (waiting up to ``timeout_s``) and move the spool along."""
        self._producer.poll(timeout_s)
        self._pump()

    @property
    def in_flight(self) -> int:
        """Messages handed to librdkafka and not yet acknowledged or failed."""
        return len(self._producer)

    @property
    def spooling(self) -> bool:
        """True while new frames go to the spool (broker unreachable, or older frames still waiting there)."""
        return self._spool is not None and (
            self._broker_down or bool(len(self._spool)) or bool(self._spool_in_flight)
        )

    @property
    def spool_backlog(self) -> int:
        return 0 if self._spool is None else len(self._spool)

    def request_stop(self) -> None:
        """Make a publish() blocked on a full spool give up (called from a signal handler)."""
        self._stop_requested = True

    def close(self, timeout_s: float = 10.0) -> CloseReport:
        """Deliver what can be delivered within ``timeout_s``; what cannot is spooled (when a spool is set)
        or reported as undelivered."""
        deadline = self._clock() + timeout_s
        while self._clock() < deadline:
            self.poll(0.05)
            waiting_in_spool = self.spool_backlog and not self._broker_down
            if self.in_flight == 0 and not waiting_in_spool:
                break
        failed_before_purge = self.stats.failed
        if len(self._producer):
            # Out of time: purge what is left. Each purged message's delivery callback spools it when there
            # is a spool; without one it is counted as failed, and reported as undelivered. A purged message
            # that was in flight may have reached the broker after all, so a replay from the spool can
            # duplicate it: at-least-once, and readers dedupe by (camera id, frame number).
            self._producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._producer.flush(1.0)
        return CloseReport(
            delivered=self.stats.delivered,
            failed=failed_before_purge,
            in_spool=self.spool_backlog,
            undelivered=self.stats.failed - failed_before_purge + len(self._producer),
        )
