"""The raw material of the bad-input corpus: the worker's bounds, the claim-check target, seeded base images
and a Frame writer that skips the record class's validation (so a mutation can write what a hostile producer
could). Pure: no Kafka, no MongoDB.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastavro import schemaless_writer

from schemas.catalog import shipped_schema
from schemas.errors import SerializationError
from schemas.framing import single_object_header
from schemas.records import (
    DeadLetterReason,
    Frame,
)
from schemas.serde import AvroRecordDeserializer

Headers = tuple[tuple[str, bytes], ...]
R = DeadLetterReason


@dataclass(frozen=True, slots=True)
class ClaimCheckTarget:
    """An image the campaign stores in GridFS before producing the corpus (content-addressed by SHA-256)."""

    database: str
    bucket: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def uri(self) -> str:
        return f"gridfs://{self.database}/{self.bucket}/{self.sha256}"


@dataclass(frozen=True, slots=True)
class CorpusLimits:
    """The worker's bounds the corpus must cross (``LINEGUARD_WORKER_MAX_MESSAGE_BYTES`` / ``..._PIXELS``)."""

    max_image_bytes: int
    max_image_pixels: int
    frame_size: int = 128  # width and height of the (otherwise valid) frames the corpus corrupts


@dataclass(slots=True)
class MutationContext:
    rng: random.Random
    limits: CorpusLimits
    target: ClaimCheckTarget
    images: ImageBank


class ImageBank:
    """A few seeded base images, encoded once (the corpus mutates copies of them)."""

    def __init__(self, seed: int, size: int) -> None:
        import cv2

        rng = np.random.default_rng(seed)
        self.size = size
        gradient = np.linspace(0, 200, size, dtype=np.float32)
        colour = []
        grey = []
        for _ in range(4):
            noise = rng.normal(0, 25, (size, size, 3)).astype(np.float32)
            image = np.clip(gradient[None, :, None] + noise, 0, 255).astype(np.uint8)
            colour.append(image)
            grey.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        self.jpeg = [_encode(".jpg", image) for image in colour]
        self.png = [_encode(".png", image) for image in colour]
        self.grey_jpeg = [_encode(".jpg", image) for image in grey]
        self.grey_png = [_encode(".png", image) for image in grey]
        self.pixel_jpeg = _encode(".jpg", np.full((1, 1, 3), 127, np.uint8))
        self.pixel_png = _encode(".png", np.full((1, 1, 3), 127, np.uint8))
        self._bombs: dict[int, bytes] = {}

    def png_bomb(self, side: int) -> bytes:
        """A grey ``side`` x ``side`` PNG of zeros, written by hand (compresses ~1000:1)."""
        if side not in self._bombs:
            rows = (b"\x00" * (side + 1)) * side  # filter byte 0, then the row's pixels
            header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
            self._bombs[side] = b"".join(
                (
                    b"\x89PNG\r\n\x1a\n",
                    _chunk(b"IHDR", header),
                    _chunk(b"IDAT", zlib.compress(rows, 9)),
                    _chunk(b"IEND", b""),
                )
            )
        return self._bombs[side]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode(extension: str, image: np.ndarray) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(extension, image)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError(f"cannot encode {extension}")
    return bytes(encoded.tobytes())


# -- Avro writing ---------------------------------------------------------------------------------------


_FRAME_SCHEMA = shipped_schema(Frame.avro_name)


def frame_dict(rng: random.Random, size: int, image: bytes, encoding: str = "JPEG") -> dict[str, Any]:
    """A well-formed Frame datum (the shape ``Frame.to_dict`` gives), for a test camera."""
    camera = f"bad-cam-{rng.randrange(8)}"
    return {
        "camera_id": camera,
        "line_id": "line-bad",
        "station_id": "station-bad",
        "frame_number": rng.randrange(1 << 40),
        "captured_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(1 << 40)),
        "width": size,
        "height": size,
        "channels": 3,
        "encoding": encoding,
        "image": image,
        "image_ref": None,
        "part_id": None,
        "ground_truth": None,
        "metadata": {},
    }


def write_frame(datum: Mapping[str, Any]) -> bytes:
    """Avro single-object bytes of a Frame datum, without the record class's validation (so invalid field
    values such as ``channels = 7`` can be written, as a buggy or hostile producer could)."""
    buffer = io.BytesIO()
    buffer.write(single_object_header(_FRAME_SCHEMA.fingerprint))
    schemaless_writer(buffer, _FRAME_SCHEMA.parsed, dict(datum))
    return buffer.getvalue()


_frame_reader = AvroRecordDeserializer(Frame)


def parses_as_frame(value: bytes) -> bool:
    """Whether the contract's own reader accepts ``value`` as a Frame (used to keep bit flips honest)."""
    try:
        _frame_reader(value)
    except SerializationError:
        return False
    return True
