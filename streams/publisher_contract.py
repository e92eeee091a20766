"""What the frame publisher is given and gives back: its options (checked against the Kafka record limit),
the librdkafka settings they make, its counters and close report, the claim-check store it writes to, and
which delivery errors mean "the broker could not be reached" (spool and resend) rather than "this message is
bad" (fail for good)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError
from confluent_kafka.serialization import SerializationContext

from infra.kafka_topics import topic_max_message_bytes
from schemas.errors import ConfigurationError
from schemas.records import Frame, ImageReference
from schemas.topics import (
    DEFAULT_MAX_MESSAGE_BYTES,
)

DEFAULT_INLINE_LIMIT_BYTES = 8 * 1024 * 1024
# Room the Avro record needs around the image (ids, ground truth, metadata) below the Kafka record limit.
_RECORD_HEADROOM_BYTES = 256 * 1024


# Delivery errors that mean "the broker could not be reached (in time)", not "this message is bad": such a
# message is spooled and sent again later. Anything else (too large, not authorized...) fails for good.
_UNREACHABLE = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._QUEUE_FULL,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)


def is_unreachable_error(error: KafkaError) -> bool:
    return error.code() in _UNREACHABLE or (error.retriable() and not error.fatal())


class ClaimCheckStore(Protocol):
    """Where images above the inline limit go (``infra.claimcheck.GridFSClaimCheckStore``)."""

    def put(
        self, data: bytes, filename: str = "", metadata: Mapping[str, Any] | None = None
    ) -> ImageReference: ...


Headers = tuple[tuple[str, bytes], ...]
FrameSerializer = Callable[[Frame, SerializationContext], bytes | None]


@dataclass(frozen=True, slots=True)
class PublisherOptions:
    topic: str
    inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    drain_window: int = 32  # spooled messages handed to librdkafka at once while draining
    drain_retry_s: float = 1.0  # pause after a failed drain attempt before trying again
    delivery_timeout_ms: int = 60_000  # librdkafka message.timeout.ms: after this a message is spooled
    queue_full_grace_s: float = 2.0  # how long a full producer queue is waited on before frames are spooled

    def __post_init__(self) -> None:
        if not self.topic:
            raise ConfigurationError("the frames topic name must not be empty")
        if self.inline_limit_bytes <= 0:
            raise ConfigurationError(f"inline limit must be positive, got {self.inline_limit_bytes} bytes")
        if self.inline_limit_bytes > self.max_message_bytes - _RECORD_HEADROOM_BYTES:
            raise ConfigurationError(
                f"inline limit {self.inline_limit_bytes} bytes leaves no room for the record inside the "
                f"Kafka message limit ({self.max_message_bytes} bytes); use at most "
                f"{self.max_message_bytes - _RECORD_HEADROOM_BYTES}"
            )
        if self.drain_window < 1:
            raise ConfigurationError("drain window must be at least 1")


def producer_config(kafka_config: Mapping[str, Any], options: PublisherOptions) -> dict[str, Any]:
    """The librdkafka settings of a frame producer; keys in ``kafka_config`` win (raw pass-through)."""
    config: dict[str, Any] = {
        "enable.idempotence": True,
        "acks": "all",
        # The same limit the topics are created with (record limit plus batch overhead), so they agree.
        "message.max.bytes": topic_max_message_bytes(options.max_message_bytes),
        "compression.type": "none",  # JPEG/PNG do not compress further; compressing only burns CPU
        "linger.ms": 5,
        "message.timeout.ms": options.delivery_timeout_ms,
        "queue.buffering.max.kbytes": 256 * 1024,  # bounded memory: beyond this, frames go to the spool
    }
    config.update(kafka_config)
    return config


@dataclass(slots=True)
class PublisherStats:
    published: int = 0  # frames accepted by publish()
    delivered: int = 0  # acknowledged by the broker (directly or from the spool)
    delivered_bytes: int = 0  # record bytes acknowledged
    failed: int = 0  # deliveries that failed for good (lost)
    too_large: int = 0  # frames refused before sending (FrameTooLargeError)
    claim_checked: int = 0  # frames whose image went to the claim-check store
    claim_check_failed: int = 0  # frames lost because the claim-check store was unreachable
    claim_check_full: int = 0  # of those, refused because the store was full (disk, quota, max bytes)
    spooled: int = 0  # messages written to the spool
    drained: int = 0  # spooled messages delivered
    spool_dropped: int = 0  # spooled messages deleted to make room (drop-oldest): lost
    spool_quarantined: int = 0  # spool files found empty, torn or corrupt (power cut, bad disk): lost
    spool_write_errors: int = 0  # frames the disk refused (full under block, read-only, I/O): lost, in failed
    blocked_s: float = 0.0  # time publish() waited for spool room (block policy)

    @property
    def lost(self) -> int:
        """Frames that will never be delivered, as known so far (``failed`` includes spool write errors)."""
        dropped = self.spool_dropped + self.spool_quarantined
        return self.failed + self.too_large + self.claim_check_failed + dropped


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What happened to every published frame, as known at close."""

    delivered: int
    failed: int
    in_spool: int  # still on disk: sent on the next start with the same spool directory
    undelivered: int  # neither delivered nor spooled when the flush timeout ran out

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.undelivered == 0
