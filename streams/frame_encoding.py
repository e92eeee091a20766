"""A Frame into the bytes and headers of its Kafka record: images above the inline limit go to the claim-check
store first (or are refused), the record is checked against the Kafka limit, and each frame gets a fresh trace
(``trace-id`` and a W3C ``traceparent``, the same trace id in both)."""

from __future__ import annotations

import dataclasses

from confluent_kafka.serialization import MessageField, SerializationContext

from infra.claimcheck import ClaimCheckStoreFullError
from schemas.errors import FrameTooLargeError, LineguardError, ServiceUnavailableError
from schemas.records import Frame, ImageEncoding
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_SCHEMA, HEADER_TRACE_ID, HEADER_TRACEPARENT
from schemas.tracecontext import new_trace
from streams.publisher_contract import (
    ClaimCheckStore,
    FrameSerializer,
    Headers,
    PublisherOptions,
    PublisherStats,
)

_CONTENT_TYPES = {ImageEncoding.JPEG: b"image/jpeg", ImageEncoding.PNG: b"image/png"}
_SCHEMA_HEADER = Frame.avro_name.encode()


class FrameEncoder:
    """Encodes the frames of one publisher; refusals and claim-checks are counted in the publisher's stats."""

    def __init__(
        self,
        options: PublisherOptions,
        serializer: FrameSerializer,
        claim_check: ClaimCheckStore | None,
        stats: PublisherStats,
    ) -> None:
        self.options = options
        self.stats = stats
        self._serializer = serializer
        self._claim_check = claim_check
        self._context = SerializationContext(options.topic, MessageField.VALUE)

    def encode(self, frame: Frame) -> tuple[bytes, Headers]:
        """The record value and headers of ``frame``; raises FrameTooLargeError or ServiceUnavailableError."""
        if len(frame.image) > self.options.inline_limit_bytes:
            frame = self._claim_check_image(frame)
        value = self._serializer(frame, self._context)
        if value is None:
            raise LineguardError("the frame serializer returned no bytes")
        if len(value) > self.options.max_message_bytes:
            self.stats.too_large += 1
            raise FrameTooLargeError(
                f"frame {frame.camera_id}#{frame.frame_number} serializes to {len(value)} bytes, above the "
                f"Kafka record limit of {self.options.max_message_bytes} bytes"
            )
        trace = new_trace()
        headers = (
            (HEADER_CONTENT_TYPE, _CONTENT_TYPES.get(frame.encoding, b"application/octet-stream")),
            (HEADER_SCHEMA, _SCHEMA_HEADER),
            (HEADER_TRACE_ID, trace.trace_id.encode()),
            (HEADER_TRACEPARENT, trace.header()),
        )
        return value, headers

    def _claim_check_image(self, frame: Frame) -> Frame:
        size = len(frame.image)
        if self._claim_check is None:
            self.stats.too_large += 1
            raise FrameTooLargeError(
                f"frame {frame.camera_id}#{frame.frame_number} has a {size}-byte image, above the inline "
                f"limit of {self.options.inline_limit_bytes} bytes, and claim-check is disabled (enable it, "
                "or lower the JPEG quality or the resolution)"
            )
        try:
            reference = self._claim_check.put(
                frame.image,
                filename=f"{frame.camera_id}/{frame.frame_number}",
                metadata={"camera_id": frame.camera_id, "frame_number": frame.frame_number},
            )
        except ServiceUnavailableError as exc:
            # The store's own bounded wait (server selection) already slowed capture down; count the frame.
            # A full store refuses at once: the frame is lost and counted, capture goes on (never a hang).
            self.stats.claim_check_failed += 1
            if isinstance(exc, ClaimCheckStoreFullError):
                self.stats.claim_check_full += 1
            raise
        self.stats.claim_checked += 1
        return dataclasses.replace(frame, image=b"", image_ref=reference)
