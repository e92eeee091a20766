"""``folder:PATH``: the images of a directory in name order, optionally looping.

JPEG and PNG files travel byte for byte (the encoder passes them through when no resize or re-encoding is
asked for); other formats OpenCV reads (BMP, TIFF, WebP) are decoded and re-encoded. A file that cannot be
decoded is skipped with one warning and counted: a bad file must not stop a line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError
from streams.sources.base import CapturedFrame, EncodedImage, ImageFormat, SourceStats

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sniff_format(data: bytes) -> ImageFormat | None:
    """JPEG or PNG from the leading bytes, None for anything else."""
    if data.startswith(_JPEG_MAGIC):
        return ImageFormat.jpeg
    if data.startswith(_PNG_MAGIC):
        return ImageFormat.png
    return None


def decode_file_bytes(data: bytes) -> np.ndarray | None:
    """Pixels as HxW or HxWx3 BGR uint8, or None when OpenCV cannot read them (or they are not 8-bit)."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        return None
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] in (1, 2):  # grey, or grey + alpha
        image = np.ascontiguousarray(image[:, :, 0])
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        return None
    return image


class FolderSource:
    """Images of one directory, sorted by name; re-listed on every pass so files added meanwhile are seen."""

    def __init__(self, directory: Path, pattern: str = "*", loop: bool = False) -> None:
        if not directory.is_dir():
            raise ConfigurationError(f"folder source: {directory} is not a directory")
        self.directory = directory
        self.pattern = pattern
        self.loop = loop
        self.name = f"folder:{directory}"
        self.stats = SourceStats()
        self._closed = threading.Event()
        if not self._list_files():
            raise ConfigurationError(f"folder source: no image files matching {pattern!r} in {directory}")

    def _list_files(self) -> list[Path]:
        return sorted(
            path
            for path in self.directory.glob(self.pattern)
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        )

    def __iter__(self) -> Iterator[CapturedFrame]:
        while not self._closed.is_set():
            yielded_this_pass = 0
            for path in self._list_files():
                if self._closed.is_set():
                    return
                frame = self._read(path)
                if frame is None:
                    continue
                yielded_this_pass += 1
                self.stats.frames += 1
                yield frame
            self.stats.loops += 1
            # A pass without a single readable image would spin forever: stop instead.
            if not self.loop or yielded_this_pass == 0:
                return

    def _read(self, path: Path) -> CapturedFrame | None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._skip(path, f"cannot read: {exc.strerror or exc}")
            return None
        captured_at = datetime.now(UTC)
        image = decode_file_bytes(data)
        if image is None:
            self._skip(path, "not a readable 8-bit image")
            return None
        file_format = sniff_format(data)
        encoded = None
        if file_format is not None:
            height, width = image.shape[:2]
            channels = 1 if image.ndim == 2 else image.shape[2]
            # A PNG with alpha was converted to BGR above; its bytes no longer describe the pixels we report.
            if not (file_format is ImageFormat.png and _png_has_alpha(data)):
                encoded = EncodedImage(data, file_format, width, height, channels)
        return CapturedFrame(captured_at=captured_at, image=image, encoded=encoded, origin=path.name)

    def _skip(self, path: Path, why: str) -> None:
        self.stats.skipped += 1
        logger.warning("skipping %s: %s (%d skipped so far)", path, why, self.stats.skipped)

    def close(self) -> None:
        self._closed.set()


def _png_has_alpha(data: bytes) -> bool:
    # IHDR starts at byte 8 (length 4, type 4, width 4, height 4, bit depth 1, colour type 1).
    colour_type = data[25] if len(data) > 25 else 0
    return colour_type in (4, 6)
