"""A claim-checked frame read while the store (MongoDB GridFS) is unreachable is not a bad frame: the decoder
must not reject it (a dead letter would take a good frame out of inspection until someone replays it); the
outage propagates so the pipeline retries and, if it lasts, stops without committing the record."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from infra.claimcheck import ClaimCheckError
from schemas.errors import ServiceUnavailableError
from schemas.records import DeadLetterReason, Frame, ImageEncoding, ImageReference
from schemas.serde import AvroRecordSerializer
from workers.decode import FrameDecoder, FrameRejected, ImageSpec
from workers.offsets import Ticket


def _claim_checked_frame() -> bytes:
    from datetime import UTC, datetime

    digest = hashlib.sha256(b"image").hexdigest()
    frame = Frame(
        camera_id="cam",
        line_id="line",
        station_id="station",
        frame_number=1,
        captured_at=datetime.now(UTC),
        width=64,
        height=64,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=b"",
        image_ref=ImageReference(uri=f"gridfs://db/frames/{digest}", sha256=digest, size_bytes=5),
    )
    return AvroRecordSerializer(Frame)(frame)


def _decoder(error: Exception) -> FrameDecoder:
    def read(reference: ImageReference) -> bytes:
        raise error

    return FrameDecoder(
        lambda image: np.zeros((8, 8, 3), np.float32),
        ImageSpec(8, 8),
        max_image_pixels=10_000_000,
        max_image_bytes=1_000_000,
        claim_check=read,
    )


def test_an_unreachable_store_is_not_a_bad_frame() -> None:
    decoder = _decoder(ServiceUnavailableError("cannot read claim-checked image: connection refused"))
    with pytest.raises(ServiceUnavailableError):
        decoder.decode(_claim_checked_frame(), Ticket("frames", 0, 0, 1))


def test_a_missing_or_corrupt_file_is_still_a_dead_letter() -> None:
    decoder = _decoder(ClaimCheckError("does not exist"))
    with pytest.raises(FrameRejected) as rejected:
        decoder.decode(_claim_checked_frame(), Ticket("frames", 0, 0, 1))
    assert rejected.value.reason is DeadLetterReason.CLAIM_CHECK_FAILED
