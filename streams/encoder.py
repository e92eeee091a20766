"""Pure encoding: captured pixels -> JPEG/PNG bytes -> :class:`schemas.records.Frame`.

No I/O and no clock: the capture time comes with the frame, and frame numbers come from a counter the caller
seeds, so the same input always gives the same record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from schemas.errors import ConfigurationError
from schemas.records import Box, Frame, GroundTruth, ImageEncoding
from streams.sources.base import CapturedFrame, EncodedImage, FrameGroundTruth, ImageFormat

_RECORD_ENCODING = {ImageFormat.jpeg: ImageEncoding.JPEG, ImageFormat.png: ImageEncoding.PNG}


@dataclass(frozen=True, slots=True)
class EncoderOptions:
    """How frames are encoded. ``resize`` is (width, height) or None to keep the captured size."""

    format: ImageFormat = ImageFormat.jpeg
    jpeg_quality: int = 90
    png_compression: int = 1  # zlib level 0-9: 1 is ~3x faster than OpenCV's default 3 for ~5 % more bytes
    resize: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigurationError(f"JPEG quality must be within 1..100, got {self.jpeg_quality}")
        if not 0 <= self.png_compression <= 9:
            raise ConfigurationError(f"PNG compression must be within 0..9, got {self.png_compression}")
        if self.resize is not None and (self.resize[0] <= 0 or self.resize[1] <= 0):
            raise ConfigurationError(f"resize must be positive, got {self.resize[0]}x{self.resize[1]}")


def channels_of(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else int(image.shape[2])


def encode_image(image: np.ndarray, options: EncoderOptions) -> EncodedImage:
    """Encode HxW or HxWx3 BGR uint8 pixels, resized first when ``options.resize`` is set."""
    import cv2

    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] not in (1, 3))
    ):
        raise ValueError(f"expected HxW or HxWx3 uint8 pixels, got shape {image.shape} dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if options.resize is not None and (image.shape[1], image.shape[0]) != options.resize:
        # INTER_AREA is the right filter for shrinking (no aliasing); growing is rare for a camera.
        image = cv2.resize(image, options.resize, interpolation=cv2.INTER_AREA)
    if options.format is ImageFormat.jpeg:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
    else:
        ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, options.png_compression])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {options.format.value}")
    height, width = image.shape[:2]
    return EncodedImage(buffer.tobytes(), options.format, width, height, channels_of(image))


def encode_mask(mask: np.ndarray) -> bytes:
    """A single-channel class mask as PNG (lossless, and masks compress to almost nothing)."""
    import cv2

    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(mask, dtype=np.uint8))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {mask.shape} mask as PNG")
    return buffer.tobytes()


def ground_truth_record(truth: FrameGroundTruth) -> GroundTruth:
    return GroundTruth(
        labels=truth.labels,
        boxes=tuple(
            Box(
                label=box.label,
                x_min=float(box.x_min),
                y_min=float(box.y_min),
                x_max=float(box.x_max),
                y_max=float(box.y_max),
            )
            for box in truth.boxes
        ),
        mask_png=None if truth.mask is None else encode_mask(truth.mask),
    )


@dataclass(slots=True)
class FrameEncoder:
    """Turns one camera's captured frames into Frame records, numbering them from ``next_frame_number``.

    A frame that already arrives encoded in the requested format and size (a JPEG file from a folder) is
    passed through byte for byte: re-encoding would cost CPU and lose quality for nothing.
    """

    camera_id: str
    line_id: str
    station_id: str
    options: EncoderOptions = field(default_factory=EncoderOptions)
    next_frame_number: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Called with each number before a frame carries it (streams.sequence.FrameSequence.reserve), so a
    # number is durably reserved before it can reach Kafka.
    reserve: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        if not self.camera_id:
            raise ConfigurationError("camera id must not be empty")
        if self.next_frame_number < 0:
            raise ConfigurationError(f"first frame number must be >= 0, got {self.next_frame_number}")

    def encode_pixels(self, captured: CapturedFrame) -> EncodedImage:
        ready = captured.encoded
        if (
            ready is not None
            and ready.format is self.options.format
            and (self.options.resize is None or self.options.resize == (ready.width, ready.height))
        ):
            return ready
        return encode_image(captured.image, self.options)

    def encode(self, captured: CapturedFrame, part_id: str | None = None) -> Frame:
        image = self.encode_pixels(captured)
        frame_number = self.next_frame_number
        if self.reserve is not None:
            self.reserve(frame_number)
        self.next_frame_number += 1
        truth = captured.ground_truth
        metadata = dict(self.metadata)
        if captured.origin:
            metadata["origin"] = captured.origin
        return Frame(
            camera_id=self.camera_id,
            line_id=self.line_id,
            station_id=self.station_id,
            frame_number=frame_number,
            captured_at=captured.captured_at,
            width=image.width,
            height=image.height,
            channels=image.channels,
            encoding=_RECORD_ENCODING[image.format],
            image=image.data,
            part_id=part_id,
            ground_truth=None if truth is None else ground_truth_record(truth),
            metadata=metadata,
        )
