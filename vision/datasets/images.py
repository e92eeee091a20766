"""Reading image and mask files from disk, the same way for every dataset format.

Every loader hands out ``Sample.load_image`` closures built here, so a dataset of a million files costs
nothing until an image is actually needed, and every image arrives in one shape: uint8, HxW (grey) or
HxWx3 (BGR).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from schemas.errors import ConfigurationError

# Extensions OpenCV decodes without extra codecs; compared lower-cased.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
)


class ImageReadError(ConfigurationError):
    """An image or mask file could not be decoded (truncated, not an image, unsupported codec)."""


def is_image_file(path: Path) -> bool:
    """True for a regular file whose extension is one OpenCV reads."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name so that every run sees the same order."""
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    # 16-bit industrial cameras are common; keep the top 8 bits rather than clipping.
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)
    if pixels.dtype != np.uint8:
        # Float or 32-bit images (e.g. TIFF from a depth sensor): stretch the observed range to 0..255.
        values = pixels.astype(np.float64)
        low, high = float(values.min()), float(values.max())
        return ((values - low) * (255.0 / (high - low) if high > low else 0.0)).astype(np.uint8)
    return pixels


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes into uint8 HxW (grey) or HxWx3 (BGR); alpha is dropped."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if pixels is None:
        raise ImageReadError(f"cannot decode image {name}: not an image or truncated")
    pixels = _to_uint8(pixels)
    if pixels.ndim == 3:
        channels = pixels.shape[2]
        if channels == 1:
            pixels = pixels[:, :, 0]
        elif channels == 4:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
        elif channels != 3:
            raise ImageReadError(f"cannot read image {name}: {channels} channels (expected 1, 3 or 4)")
    return np.ascontiguousarray(pixels)


def read_image(path: Path) -> np.ndarray:
    """Read one image file (any size, grey or colour, 8 or 16 bit) as uint8 grey or BGR."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    return decode_image(data, str(path))


def read_mask(path: Path) -> np.ndarray:
    """Read a label mask as HxW uint8 (colour masks are reduced to their first channel)."""
    pixels = read_image(path)
    return pixels if pixels.ndim == 2 else pixels[:, :, 0]


def image_loader(path: Path) -> Callable[[], np.ndarray]:
    """A closure that reads ``path`` when called (lazy loading for ``Sample.load_image``)."""
    return lambda: read_image(path)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file; decodes it, so use it only where the size is unknown."""
    pixels = read_image(path)
    return pixels.shape[1], pixels.shape[0]


def find_image(stem_or_name: str, folders: Iterable[Path]) -> Path | None:
    """The first file in ``folders`` named ``stem_or_name``, or with its stem and an image extension."""
    for folder in folders:
        exact = folder / stem_or_name
        if exact.is_file():
            return exact
        stem = Path(stem_or_name).stem
        for candidate in sorted(folder.glob(f"{stem}.*")):
            if is_image_file(candidate):
                return candidate
    return None
