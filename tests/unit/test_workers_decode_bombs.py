"""Issue 19, item 1 and the string bounds of item 3: only JPEG and PNG are ever decoded (a WebP, TIFF or PGM
bomb is refused before any decoder allocates), and a frame's strings are bounded at decode."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from chaos.bombs import pxm_bomb, tiff_bomb, webp_bomb
from schemas.records import DeadLetterReason, Frame, ImageEncoding
from schemas.serde import AvroRecordSerializer
from vision.preprocess import PreprocessSpec, preprocess_batch
from workers.decode import MAX_ID_CHARS, FrameDecoder, FrameRejected, ImageSpec
from workers.offsets import Ticket

SPEC = PreprocessSpec.for_input(32, 32)
serialize = AvroRecordSerializer(Frame)
TICKET = Ticket("frames", 0, 0, 1)


def _decoder() -> FrameDecoder:
    return FrameDecoder(
        lambda image: preprocess_batch([image], SPEC)[0],
        ImageSpec(width=32, height=32),
        max_image_pixels=4_000_000,
        max_image_bytes=1_000_000,
    )


def _frame(data: bytes, encoding: ImageEncoding, **changes: object) -> Frame:
    frame = Frame(
        camera_id="cam",
        line_id="line",
        station_id="st",
        frame_number=1,
        captured_at=datetime(2026, 1, 1, tzinfo=UTC),
        width=128,
        height=128,
        channels=3,
        encoding=encoding,
        image=data,
    )
    return dataclasses.replace(frame, **changes)  # type: ignore[arg-type]


def _rejection(frame: Frame) -> FrameRejected:
    with pytest.raises(FrameRejected) as caught:
        _decoder().decode(serialize(frame), TICKET)
    return caught.value


def test_the_bombs_are_real_images_opencv_would_decode() -> None:
    # Small versions decode: the same bytes at 16000 would decode to 768 MB of pixels (1.5-1.75 GB peak RSS).
    for bomb in (webp_bomb(300), tiff_bomb(300)):
        image = cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (300, 300, 3)
    assert len(webp_bomb(16_000)) < 100 and len(tiff_bomb(16_000)) < 4_000


@pytest.mark.parametrize("encoding", [ImageEncoding.UNKNOWN, ImageEncoding.PNG, ImageEncoding.JPEG])
@pytest.mark.parametrize("bomb", [webp_bomb, tiff_bomb, pxm_bomb])
def test_other_formats_are_refused_before_decoding(bomb: object, encoding: ImageEncoding) -> None:
    rejection = _rejection(_frame(bomb(16_000), encoding))  # type: ignore[operator]
    assert rejection.reason is DeadLetterReason.CORRUPT_IMAGE
    assert "JPEG" in str(rejection) and "PNG" in str(rejection)


def test_refusing_the_bombs_costs_no_memory() -> None:
    """Peak RSS of a process that decodes every bomb: the decoder's own footprint, not 1.7 GB."""
    script = textwrap.dedent(
        """
        from tests.unit.test_workers_decode_bombs import _decoder, _frame, serialize, TICKET
        from chaos.bombs import pxm_bomb, tiff_bomb, webp_bomb
        from schemas.records import ImageEncoding
        from workers.decode import FrameRejected
        decoder = _decoder()
        for bomb in (webp_bomb, tiff_bomb, pxm_bomb):
            for encoding in (ImageEncoding.UNKNOWN, ImageEncoding.PNG):
                try:
                    decoder.decode(serialize(_frame(bomb(16000), encoding)), TICKET)
                except FrameRejected:
                    pass
        # VmHWM, not ru_maxrss: the kernel carries ru_maxrss over from the parent at fork, so under a
        # pytest process holding 1.7 GB of trained models it reported the parent's size.
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        print(int(status.split()[0]) // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) < 400  # MB; a single full decode of one bomb is >= 1,500


def test_declared_encoding_must_match_the_bytes_and_unknown_is_sniffed() -> None:
    image = np.full((128, 128, 3), 60, np.uint8)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    png = cv2.imencode(".png", image)[1].tobytes()
    assert _rejection(_frame(jpeg, ImageEncoding.PNG)).reason is DeadLetterReason.CORRUPT_IMAGE
    assert _rejection(_frame(png, ImageEncoding.JPEG)).reason is DeadLetterReason.CORRUPT_IMAGE
    for data in (jpeg, png):
        decoded = _decoder().decode(serialize(_frame(data, ImageEncoding.UNKNOWN)), TICKET)
        assert decoded.tensor.shape == (32, 32, 3)


@pytest.mark.parametrize(
    "changes",
    [
        {"camera_id": "c" * (MAX_ID_CHARS + 1)},
        {"line_id": "l" * 100_000},
        {"part_id": "p" * 5_000},
        {"metadata": {f"k{i}": "v" for i in range(65)}},
        {"metadata": {"lot": "v" * 20_000}},
    ],
)
def test_strings_above_their_bounds_are_oversize(changes: dict[str, object]) -> None:
    jpeg = cv2.imencode(".jpg", np.full((128, 128, 3), 60, np.uint8))[1].tobytes()
    rejection = _rejection(_frame(jpeg, ImageEncoding.JPEG, **changes))
    assert rejection.reason is DeadLetterReason.OVERSIZE and "bound" in str(rejection)


def test_strings_at_their_bounds_are_accepted() -> None:
    jpeg = cv2.imencode(".jpg", np.full((128, 128, 3), 60, np.uint8))[1].tobytes()
    frame = _frame(jpeg, ImageEncoding.JPEG, camera_id="c" * MAX_ID_CHARS, metadata={"lot": "v" * 1024})
    assert _decoder().decode(serialize(frame), TICKET).frame.camera_id == "c" * MAX_ID_CHARS
