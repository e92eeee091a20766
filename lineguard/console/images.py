"""A frame's image for the viewer, fetched from where it is: the frames topic at the result's Kafka
coordinates, then (for a large frame) the claim-check store it points to.

One consumer is kept for the process and re-assigned per request (under a lock): creating a consumer per
click would cost a broker round trip of set-up each time. An offset below the partition's low watermark has
been deleted by retention; the viewer says so instead of failing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.claimcheck import ClaimCheckError, GridFSClaimCheckStore, resolve_image
from schemas.errors import SerializationError
from schemas.records import Frame, ImageEncoding, KafkaCoordinates
from schemas.serde import AvroRecordDeserializer

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

log = logging.getLogger(__name__)

CONTENT_TYPES = {ImageEncoding.JPEG: "image/jpeg", ImageEncoding.PNG: "image/png"}


class ImageGone(LookupError):
    """The frame is no longer where its result says (deleted by retention, or its topic is gone)."""


@dataclass(frozen=True, slots=True)
class FrameImage:
    data: bytes
    content_type: str


class FrameImageReader:
    def __init__(
        self,
        kafka_config: dict[str, Any],
        claim_store: GridFSClaimCheckStore | None,
        registry: SchemaRegistryClient | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": "lineguard-console-viewer",  # never subscribes or commits: assign() only
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.max.bytes": 16 * 1024 * 1024,
                "message.max.bytes": 16 * 1024 * 1024,
            }
        )
        self._lock = threading.Lock()
        self._deserialize = AvroRecordDeserializer(Frame, registry)
        self._claim_store = claim_store

    def close(self) -> None:
        with self._lock:
            self._consumer.close()

    def read(self, source: KafkaCoordinates, camera: str, number: int, timeout_s: float = 5.0) -> FrameImage:
        """The encoded image of frame ``camera#number``, stored at ``source``."""
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        with self._lock:
            partition = TopicPartition(source.topic, source.partition, source.offset)
            try:
                low, high = self._consumer.get_watermark_offsets(partition, timeout=timeout_s)
            except KafkaException as exc:
                raise ImageGone(f"topic {source.topic} cannot be read ({exc.args[0].str()})") from None
            if not low <= source.offset < high:
                raise ImageGone(
                    f"offset {source.offset} of {source.topic}[{source.partition}] is gone (retention: the "
                    f"partition now holds offsets {low}-{max(low, high - 1)})"
                )
            self._consumer.assign([partition])
            try:
                message = self._consumer.poll(timeout_s)
            finally:
                self._consumer.unassign()
        error = None if message is None else message.error()
        if message is None or error is not None:
            code = None if error is None else error.code()
            if code == KafkaError._PARTITION_EOF:
                raise ImageGone(f"offset {source.offset} of {source.topic}[{source.partition}] is gone")
            raise TimeoutError(f"the frames topic did not answer within {timeout_s:.0f} s")
        where = f"{source.topic}[{source.partition}]@{source.offset}"
        value = message.value()
        if value is None:
            raise ImageGone(f"the record at {where} is empty")
        try:
            frame = self._deserialize(value)
        except SerializationError as exc:
            raise ImageGone(f"the record at {where} is not a frame: {exc}") from None
        if (frame.camera_id, frame.frame_number) != (camera, number):
            raise ImageGone(f"{where} holds another frame")
        try:
            data = resolve_image(frame, self._claim_store)
        except ClaimCheckError as exc:
            raise ImageGone(f"the claim-checked image is gone: {exc}") from None
        content_type = CONTENT_TYPES.get(frame.encoding)
        if content_type is None:
            raise ImageGone(f"frame encoding {frame.encoding} cannot be shown in a browser")
        return FrameImage(data, content_type)
