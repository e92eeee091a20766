"""Decoding and validation: bad input maps to its dead-letter reason; good input is preprocessed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from schemas.records import DeadLetterReason, Frame, ImageEncoding, ImageReference
from schemas.serde import AvroRecordSerializer
from vision.preprocess import PreprocessSpec, preprocess_batch
from workers.decode import FrameDecoder, FrameRejected, ImageSpec, reduction_factor
from workers.offsets import OffsetTracker

SPEC = PreprocessSpec.for_input(32, 32)
serialize = AvroRecordSerializer(Frame)


def _image(width: int = 128, height: int = 96) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)
    return image


def _frame(image: np.ndarray, ext: str = ".jpg", **changes: object) -> Frame:
    ok, data = cv2.imencode(ext, image)
    assert ok
    frame = Frame(
        camera_id="cam",
        line_id="line",
        station_id="st",
        frame_number=1,
        captured_at=datetime.now(UTC),
        width=image.shape[1],
        height=image.shape[0],
        channels=3,
        encoding=ImageEncoding.JPEG if ext == ".jpg" else ImageEncoding.PNG,
        image=data.tobytes(),
    )
    return dataclasses.replace(frame, **changes)  # type: ignore[arg-type]


def _decoder(**kwargs: object) -> FrameDecoder:
    options: dict[str, object] = {"max_image_pixels": 1_000_000, "max_image_bytes": 1_000_000}
    options.update(kwargs)
    return FrameDecoder(
        lambda image: preprocess_batch([image], SPEC)[0],
        ImageSpec(width=32, height=32),
        **options,  # type: ignore[arg-type]
    )


def _ticket() -> object:
    return OffsetTracker().track("frames", 0, 0)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_good_frames_decode_at_reduced_scale_and_preprocess(ext: str) -> None:
    decoded = _decoder().decode(serialize(_frame(_image(), ext)), _ticket(), trace_id=b"t")  # type: ignore[arg-type]
    # Decoded at reduced scale (libjpeg picks M/8, OpenCV 1/2), never below the 32x32 model input.
    height, width = decoded.image.shape[:2]
    assert 32 <= height < 96 and 32 <= width < 128
    assert width * 96 == height * 128  # aspect kept
    assert decoded.tensor.shape == (32, 32, 3) and decoded.tensor.dtype == np.float32
    assert decoded.frame.image == b""  # bytes dropped once decoded
    assert decoded.trace_id == b"t"
    assert decoded.source.partition == 0 and decoded.source.offset == 0
    # RGB order after preprocessing: the red left half is channel 0.
    assert decoded.tensor[16, 4, 0] > 0.9 and decoded.tensor[16, 4, 2] < 0.1


def test_reduction_factor_never_goes_below_the_model_input() -> None:
    assert reduction_factor(1280, 1024, 224, 224) == 4
    assert reduction_factor(1280, 1024, 640, 640) == 1
    assert reduction_factor(128, 128, 16, 16) == 8


def _reason(value: bytes | None, decoder: FrameDecoder | None = None) -> DeadLetterReason:
    with pytest.raises(FrameRejected) as caught:
        (decoder or _decoder()).decode(value, _ticket())  # type: ignore[arg-type]
    return caught.value.reason


def test_bad_inputs_map_to_their_dead_letter_reasons() -> None:
    good = _frame(_image())
    assert _reason(None) is DeadLetterReason.UNDECODABLE_RECORD
    assert _reason(b"garbage") is DeadLetterReason.UNDECODABLE_RECORD
    assert _reason(b"\xc3\x01" + bytes(8) + b"\x00") is DeadLetterReason.UNKNOWN_SCHEMA
    assert _reason(serialize(dataclasses.replace(good, image=b""))) is DeadLetterReason.EMPTY_IMAGE
    truncated = dataclasses.replace(good, image=good.image[: len(good.image) // 2])
    assert _reason(serialize(truncated)) is DeadLetterReason.CORRUPT_IMAGE
    not_jpeg = dataclasses.replace(good, image=b"\x00\x01" * 100)
    assert _reason(serialize(not_jpeg)) is DeadLetterReason.CORRUPT_IMAGE
    assert _reason(serialize(dataclasses.replace(good, width=127))) is DeadLetterReason.WRONG_DIMENSIONS
    png = _frame(_image(), ".png", height=95)
    assert _reason(serialize(png)) is DeadLetterReason.WRONG_DIMENSIONS
    small = _decoder(max_image_pixels=100 * 100)
    assert _reason(serialize(good), small) is DeadLetterReason.OVERSIZE
    # A record that lies about its size is caught on the JPEG header, before decoding.
    liar = dataclasses.replace(good, width=10, height=10)
    assert _reason(serialize(liar), small) is DeadLetterReason.OVERSIZE
    few_bytes = _decoder(max_image_bytes=100)
    assert _reason(serialize(good), few_bytes) is DeadLetterReason.OVERSIZE


def test_claim_check_frames_are_fetched_or_dead_lettered() -> None:
    good = _frame(_image())
    reference = ImageReference(
        uri="gridfs://db/frames/" + "a" * 64, sha256="a" * 64, size_bytes=len(good.image)
    )
    by_reference = serialize(dataclasses.replace(good, image=b"", image_ref=reference))

    assert _reason(by_reference) is DeadLetterReason.CLAIM_CHECK_FAILED  # no store configured

    def missing(_: ImageReference) -> bytes:
        raise LookupError("no such file")

    assert _reason(by_reference, _decoder(claim_check=missing)) is DeadLetterReason.CLAIM_CHECK_FAILED
    stored = _decoder(claim_check=lambda ref: good.image)
    decoded = stored.decode(by_reference, _ticket())  # type: ignore[arg-type]
    assert decoded.tensor.shape == (32, 32, 3)


def test_rejection_names_the_underlying_error_class() -> None:
    with pytest.raises(FrameRejected) as caught:
        _decoder().decode(b"\xc3\x01" + bytes(8) + b"\x00", _ticket())  # type: ignore[arg-type]
    assert caught.value.error_class == "UnknownSchemaError"
