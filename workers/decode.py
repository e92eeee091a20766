"""Kafka record -> Frame -> pixels -> model input, or a rejection with a dead-letter reason.

Runs in the decode thread pool: simplejpeg and OpenCV release the GIL while they decode. JPEGs are decoded
at reduced scale (libjpeg's DCT scaling, 1/2, 1/4 or 1/8) when the model input is much smaller than the
frame: on a 1280x1024 frame and a 224x224 model that is ~40 % faster than a full decode followed by a
resize, and the result is still at least the model's input size, so preprocessing only ever shrinks.

Validation, cheapest check first, each failure a :class:`FrameRejected` with its dead-letter reason:
undecodable Avro or unknown writer schema; string fields above their bounds; an empty image; an image above
the pixel or byte bound (checked on the JPEG or PNG header *before* decoding, so a decompression bomb costs
nothing); a failed claim-check; bytes that are neither JPEG nor PNG (no other format is ever decoded) or do
not match the declared encoding; dimensions or a channel count in the image header that differ from the
record's; bytes that do not decode.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from schemas.errors import LineguardError, SerializationError, ServiceUnavailableError, UnknownSchemaError
from schemas.records import DeadLetterReason, Frame, ImageEncoding, ImageReference, KafkaCoordinates
from schemas.serde import AvroRecordDeserializer
from workers.offsets import Ticket

Preprocess = Callable[[np.ndarray], np.ndarray]
ClaimCheckReader = Callable[[ImageReference], bytes]

_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_IHDR_END = (
    29  # signature (8) + chunk length (4) + "IHDR" (4) + width, height, depth, colour type... (13)
)
_PNG_GREY_COLOUR_TYPES = frozenset({0, 4})  # grey, grey + alpha; 2, 3, 6 (RGB, palette, RGBA) are colour


class FrameRejected(LineguardError):
    """A record the worker cannot inspect: goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: DeadLetterReason, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        # The class named in the dead letter: the underlying error when there is one.
        self.error_class = type(cause).__name__ if cause is not None else type(self).__name__


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What the model wants: input size and colour (from the model artifact's metadata)."""

    width: int
    height: int
    grayscale: bool = False


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A frame ready for the batcher: its record (image bytes dropped), pixels and model input."""

    ticket: Ticket
    frame: Frame  # image bytes replaced by b"" to keep in-flight memory small
    source: KafkaCoordinates
    image: np.ndarray  # decoded pixels (possibly at reduced scale): crops for defect events come from here
    tensor: np.ndarray  # preprocessed model input
    received_at: datetime
    ready_at: float  # time.monotonic() when decoding finished: the batcher's arrival time
    decode_seconds: float
    trace_id: bytes | None = None  # carried from the frame's headers to every output
    generation: int = 0  # which served model the tensor was preprocessed for (models can be swapped)


class FrameDecoder:
    """Turns a record's value into a :class:`DecodedFrame`; thread-safe, called from the decode pool."""

    def __init__(
        self,
        preprocess: Preprocess,
        spec: ImageSpec,
        *,
        max_image_pixels: int,
        max_image_bytes: int,
        claim_check: ClaimCheckReader | None = None,
        deserializer: AvroRecordDeserializer[Frame] | None = None,
        generation: int = 0,
    ) -> None:
        self.generation = generation  # the served model this decoder preprocesses for (stamped on each frame)
        self._preprocess = preprocess
        self._spec = spec
        self._max_pixels = max_image_pixels
        self._max_bytes = max_image_bytes
        self._claim_check = claim_check
        self._deserializer = deserializer if deserializer is not None else AvroRecordDeserializer(Frame)

    def decode(
        self,
        value: bytes | None,
        ticket: Ticket,
        received_at: datetime | None = None,
        trace_id: bytes | None = None,
    ) -> DecodedFrame:
        """Decode and preprocess one record; raises :class:`FrameRejected` for poison input."""
        started = time.perf_counter()
        return self.decode_frame(self.read_frame(value), ticket, received_at, trace_id, started)

    def decode_frame(
        self,
        frame: Frame,
        ticket: Ticket,
        received_at: datetime | None = None,
        trace_id: bytes | None = None,
        started: float | None = None,
    ) -> DecodedFrame:
        """:meth:`decode` for a record already read with :meth:`read_frame` (the deadline check reads it
        first: the Avro record is not deserialized twice)."""
        started = started if started is not None else time.perf_counter()
        received = received_at if received_at is not None else datetime.now(UTC)
        data = self._image_bytes(frame)
        image = self.decode_image(frame, data)
        try:
            tensor = self._preprocess(image)
        except Exception as exc:  # preprocessing a valid image should not fail; if it does, say so per frame
            raise FrameRejected(DeadLetterReason.OTHER, f"preprocessing failed: {exc}", exc) from exc
        return DecodedFrame(
            ticket=ticket,
            frame=dataclasses.replace(frame, image=b"") if frame.image else frame,
            source=KafkaCoordinates(topic=ticket.topic, partition=ticket.partition, offset=ticket.offset),
            image=image,
            tensor=tensor,
            received_at=received,
            ready_at=time.monotonic(),
            decode_seconds=time.perf_counter() - started,
            trace_id=trace_id,
            generation=self.generation,
        )

    def read_frame(self, value: bytes | None) -> Frame:
        if not value:
            raise FrameRejected(DeadLetterReason.UNDECODABLE_RECORD, "record has no value")
        try:
            frame = self._deserializer(value)
        except UnknownSchemaError as exc:
            raise FrameRejected(DeadLetterReason.UNKNOWN_SCHEMA, str(exc), exc) from exc
        except SerializationError as exc:
            raise FrameRejected(DeadLetterReason.UNDECODABLE_RECORD, str(exc), exc) from exc
        assert frame is not None
        problem = field_bound_violation(frame)
        if problem is not None:
            raise FrameRejected(DeadLetterReason.OVERSIZE, problem)
        return frame

    def _image_bytes(self, frame: Frame) -> bytes:
        if frame.width * frame.height > self._max_pixels:
            raise FrameRejected(
                DeadLetterReason.OVERSIZE,
                f"frame is {frame.width}x{frame.height}, above the {self._max_pixels} pixel bound",
            )
        if frame.image_ref is not None:
            if frame.image_ref.size_bytes > self._max_bytes:
                raise FrameRejected(
                    DeadLetterReason.OVERSIZE,
                    f"referenced image is {frame.image_ref.size_bytes} bytes, above {self._max_bytes}",
                )
            if self._claim_check is None:
                raise FrameRejected(
                    DeadLetterReason.CLAIM_CHECK_FAILED,
                    "frame is stored by reference but no claim-check store",
                )
            try:
                data = self._claim_check(frame.image_ref)
            except ServiceUnavailableError:
                raise  # the store is down, the record is fine: the pipeline retries, it never dead-letters
            except (
                Exception
            ) as exc:  # a missing object, a hash or size mismatch, a bad URI: the record's fault
                raise FrameRejected(
                    DeadLetterReason.CLAIM_CHECK_FAILED, f"cannot read {frame.image_ref.uri}: {exc}", exc
                ) from exc
        else:
            data = frame.image
        if not data:
            raise FrameRejected(
                DeadLetterReason.EMPTY_IMAGE, "frame has no image bytes and no image reference"
            )
        if len(data) > self._max_bytes:
            raise FrameRejected(
                DeadLetterReason.OVERSIZE,
                f"image is {len(data)} bytes, above the {self._max_bytes} byte bound",
            )
        return data

    def decode_image(self, frame: Frame, data: bytes) -> np.ndarray:
        """Pixels of the frame, at reduced scale where the model allows; validated against the record.

        Only the encodings a frame may declare (the Avro enum ``ImageEncoding``: JPEG, PNG) are decoded, and
        each only after its header passed the pixel bound. Anything else (WebP, TIFF, JPEG 2000, AVIF, PXM,
        which ``cv2.imdecode`` would also read) is refused before any decoder sees it: those formats have no
        header check here, and a 44-byte WebP that decodes to 16000x16000 (1.7 GB) is a decompression bomb.
        """
        actual = sniff_encoding(data)
        if actual is None:
            raise FrameRejected(
                DeadLetterReason.CORRUPT_IMAGE,
                f"image bytes are neither JPEG nor PNG (they start {data[:8].hex()}); "
                "a frame may only carry JPEG or PNG",
            )
        if frame.encoding is not ImageEncoding.UNKNOWN and frame.encoding is not actual:
            raise FrameRejected(
                DeadLetterReason.CORRUPT_IMAGE,
                f"record says {frame.encoding.value} but the bytes are a {actual.value}",
            )
        if actual is ImageEncoding.JPEG:
            return self._decode_jpeg(frame, data)
        self._check_png_header(frame, data)
        return self._decode_png(frame, data)

    def _decode_jpeg(self, frame: Frame, data: bytes) -> np.ndarray:
        import simplejpeg

        try:
            height, width, _colorspace, _subsampling = simplejpeg.decode_jpeg_header(data)
        except ValueError as exc:
            raise FrameRejected(DeadLetterReason.CORRUPT_IMAGE, f"bad JPEG header: {exc}", exc) from exc
        self._check_dimensions(frame, width, height)
        self._check_channels(frame, 1 if _colorspace == "Gray" else 3)
        try:
            return simplejpeg.decode_jpeg(
                data,
                colorspace="GRAY" if self._spec.grayscale else "BGR",
                min_height=self._spec.height,
                min_width=self._spec.width,
                strict=True,
            )
        except ValueError as exc:
            raise FrameRejected(DeadLetterReason.CORRUPT_IMAGE, f"JPEG does not decode: {exc}", exc) from exc

    def _decode_png(self, frame: Frame, data: bytes) -> np.ndarray:
        import cv2

        factor = reduction_factor(frame.width, frame.height, self._spec.width, self._spec.height)
        flags = _REDUCED_FLAGS[(factor, self._spec.grayscale)]
        try:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
        except cv2.error as exc:  # e.g. a reduced-scale decode of an image smaller than the scale
            raise FrameRejected(DeadLetterReason.CORRUPT_IMAGE, f"image does not decode: {exc}", exc) from exc
        if image is None or image.size == 0:
            raise FrameRejected(
                DeadLetterReason.CORRUPT_IMAGE, f"{len(data)} bytes do not decode as an image"
            )
        height, width = image.shape[:2]
        # OpenCV rounds a reduced size either way depending on the codec: accept floor or ceil.
        if (width, height) not in {
            (frame.width // factor, frame.height // factor),
            (math.ceil(frame.width / factor), math.ceil(frame.height / factor)),
        }:
            raise FrameRejected(
                DeadLetterReason.WRONG_DIMENSIONS,
                f"record says {frame.width}x{frame.height}, image decodes to "
                f"{width * factor}x{height * factor} (at 1/{factor} scale: {width}x{height})",
            )
        return image

    def _check_png_header(self, frame: Frame, data: bytes) -> None:
        """Size and colour type from the IHDR chunk, before OpenCV allocates the decoded image."""
        if len(data) < _PNG_IHDR_END or data[12:16] != b"IHDR":
            raise FrameRejected(DeadLetterReason.CORRUPT_IMAGE, "PNG without a valid IHDR header")
        width, height = struct.unpack_from(">II", data, 16)
        self._check_dimensions(frame, width, height)
        self._check_channels(frame, 1 if data[25] in _PNG_GREY_COLOUR_TYPES else 3)

    @staticmethod
    def _check_channels(frame: Frame, channels: int) -> None:
        if frame.channels != channels:
            raise FrameRejected(
                DeadLetterReason.WRONG_DIMENSIONS,
                f"record says {frame.channels} channel(s), the image has {channels}",
            )

    def _check_dimensions(self, frame: Frame, width: int, height: int) -> None:
        if width * height > self._max_pixels:
            raise FrameRejected(
                DeadLetterReason.OVERSIZE,
                f"image is {width}x{height}, above the {self._max_pixels} pixel bound",
            )
        if (width, height) != (frame.width, frame.height):
            raise FrameRejected(
                DeadLetterReason.WRONG_DIMENSIONS,
                f"record says {frame.width}x{frame.height}, image is {width}x{height}",
            )


# Bounds on a frame's strings: results and defect events copy the ids (an event once per region), so an
# unbounded camera id or metadata map would make outputs the producer refuses (MSG_SIZE_TOO_LARGE).
MAX_ID_CHARS = 256  # camera, line, station, part ids; ground-truth labels
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_CHARS = 1024
MAX_GROUND_TRUTH_ITEMS = 1024  # labels, boxes


def field_bound_violation(frame: Frame) -> str | None:
    """What breaks the string and collection bounds of ``frame``, or None when it is within them."""
    for name in ("camera_id", "line_id", "station_id", "part_id"):
        value = getattr(frame, name)
        if value is not None and len(value) > MAX_ID_CHARS:
            return f"{name} is {len(value)} characters, above the {MAX_ID_CHARS} bound"
    if len(frame.metadata) > MAX_METADATA_ENTRIES:
        return f"metadata has {len(frame.metadata)} entries, above the {MAX_METADATA_ENTRIES} bound"
    for key, value in frame.metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS or len(value) > MAX_METADATA_VALUE_CHARS:
            return (
                f"metadata entry of {len(key)}+{len(value)} characters, above the "
                f"{MAX_METADATA_KEY_CHARS}/{MAX_METADATA_VALUE_CHARS} bounds"
            )
    truth = frame.ground_truth
    if truth is not None:
        if len(truth.labels) > MAX_GROUND_TRUTH_ITEMS or len(truth.boxes) > MAX_GROUND_TRUTH_ITEMS:
            return f"ground truth has more than {MAX_GROUND_TRUTH_ITEMS} labels or boxes"
        labels = [*truth.labels, *(box.label for box in truth.boxes)]
        if any(len(label) > MAX_ID_CHARS for label in labels):
            return f"a ground-truth label is above the {MAX_ID_CHARS} character bound"
    return None


def sniff_encoding(data: bytes) -> ImageEncoding | None:
    """JPEG or PNG by the bytes' magic; None for anything else (never decoded)."""
    if data.startswith(_JPEG_MAGIC):
        return ImageEncoding.JPEG
    if data.startswith(_PNG_MAGIC):
        return ImageEncoding.PNG
    return None


def reduction_factor(width: int, height: int, target_width: int, target_height: int) -> int:
    """The largest of 1, 2, 4, 8 that keeps the image at least the target size in both directions."""
    for factor in (8, 4, 2):
        if width // factor >= target_width and height // factor >= target_height:
            return factor
    return 1


def _reduced_flags() -> dict[tuple[int, bool], int]:
    import cv2

    return {
        (1, False): cv2.IMREAD_COLOR,
        (2, False): cv2.IMREAD_REDUCED_COLOR_2,
        (4, False): cv2.IMREAD_REDUCED_COLOR_4,
        (8, False): cv2.IMREAD_REDUCED_COLOR_8,
        (1, True): cv2.IMREAD_GRAYSCALE,
        (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
        (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4,
        (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8,
    }


class _LazyFlags(dict[tuple[int, bool], int]):
    # OpenCV is imported on first use, not when the CLI imports this module.
    def __missing__(self, key: tuple[int, bool]) -> int:
        self.update(_reduced_flags())
        return self[key]


_REDUCED_FLAGS = _LazyFlags()
