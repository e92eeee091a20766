"""The pure encoder: pixels -> JPEG/PNG -> Frame record."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from schemas.errors import ConfigurationError
from schemas.records import ImageEncoding
from streams.encoder import EncoderOptions, FrameEncoder, encode_image
from streams.sources.base import CapturedFrame, EncodedImage, FrameGroundTruth, ImageFormat
from vision.samples import BoxLabel

CAPTURED_AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _gradient(height: int = 24, width: int = 32) -> np.ndarray:
    row = np.linspace(0, 255, width, dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, None], (height, width, 3)))


def test_png_is_lossless() -> None:
    image = _gradient()
    encoded = encode_image(image, EncoderOptions(format=ImageFormat.png))
    assert encoded.data.startswith(b"\x89PNG")
    decoded = cv2.imdecode(np.frombuffer(encoded.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and np.array_equal(decoded, image)
    assert (encoded.width, encoded.height, encoded.channels) == (32, 24, 3)


def test_jpeg_quality_changes_the_size() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    low = encode_image(image, EncoderOptions(jpeg_quality=20))
    high = encode_image(image, EncoderOptions(jpeg_quality=95))
    assert low.data.startswith(b"\xff\xd8\xff") and high.data.startswith(b"\xff\xd8\xff")
    assert len(low.data) < len(high.data)


def test_resize_and_grey() -> None:
    grey = np.zeros((40, 60), dtype=np.uint8)
    encoded = encode_image(grey, EncoderOptions(format=ImageFormat.png, resize=(30, 20)))
    assert (encoded.width, encoded.height, encoded.channels) == (30, 20, 1)
    decoded = cv2.imdecode(np.frombuffer(encoded.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.shape == (20, 30)


def test_rejects_pixels_that_are_not_uint8_grey_or_bgr() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4, 4), dtype=np.uint8), EncoderOptions())
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4), dtype=np.float32), EncoderOptions())


@pytest.mark.parametrize(
    "options", [{"jpeg_quality": 0}, {"jpeg_quality": 101}, {"png_compression": 10}, {"resize": (0, 10)}]
)
def test_bad_options_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        EncoderOptions(**options)  # type: ignore[arg-type]


def test_frames_are_numbered_per_camera_and_carry_identity_and_time() -> None:
    encoder = FrameEncoder("cam-7", "line-2", "st-3", next_frame_number=41, metadata={"lot": "A"})
    frames = [encoder.encode(CapturedFrame(CAPTURED_AT, _gradient(), origin="x.png")) for _ in range(3)]
    assert [f.frame_number for f in frames] == [41, 42, 43]
    first = frames[0]
    assert (first.camera_id, first.line_id, first.station_id) == ("cam-7", "line-2", "st-3")
    assert first.captured_at == CAPTURED_AT
    assert first.encoding is ImageEncoding.JPEG
    assert (first.width, first.height, first.channels) == (32, 24, 3)
    assert first.metadata == {"lot": "A", "origin": "x.png"}
    assert first.image_ref is None and first.ground_truth is None


def test_already_encoded_bytes_pass_through_unchanged() -> None:
    image = _gradient()
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    original = buffer.tobytes()
    captured = CapturedFrame(CAPTURED_AT, image, encoded=EncodedImage(original, ImageFormat.jpeg, 32, 24, 3))
    assert FrameEncoder("c", "l", "s").encode(captured).image == original
    # Asked for PNG, or for another size: re-encoded.
    png = FrameEncoder("c", "l", "s", options=EncoderOptions(format=ImageFormat.png)).encode(captured)
    assert png.encoding is ImageEncoding.PNG and png.image != original
    resized = FrameEncoder("c", "l", "s", options=EncoderOptions(resize=(16, 12))).encode(captured)
    assert (resized.width, resized.height) == (16, 12)


def test_ground_truth_becomes_boxes_and_a_png_mask() -> None:
    mask = np.zeros((24, 32), dtype=np.uint8)
    mask[2:5, 3:9] = 1
    truth = FrameGroundTruth(labels=("scratch",), boxes=(BoxLabel("scratch", 0.1, 0.1, 0.3, 0.2),), mask=mask)
    frame = FrameEncoder("c", "l", "s").encode(CapturedFrame(CAPTURED_AT, _gradient(), ground_truth=truth))
    assert frame.ground_truth is not None
    assert frame.ground_truth.labels == ("scratch",)
    assert frame.ground_truth.boxes[0].x_max == pytest.approx(0.3)
    assert frame.ground_truth.mask_png is not None
    decoded = cv2.imdecode(np.frombuffer(frame.ground_truth.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and np.array_equal(decoded, mask)


def test_encoder_refuses_an_empty_camera_id_and_negative_numbers() -> None:
    with pytest.raises(ConfigurationError):
        FrameEncoder("", "l", "s")
    with pytest.raises(ConfigurationError):
        FrameEncoder("c", "l", "s", next_frame_number=-1)
