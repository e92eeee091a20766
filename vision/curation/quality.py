"""Per-image quality measurements: sharpness, exposure and truncated files.

Sharpness is the variance of the Laplacian on a grey copy scaled to at most 512 pixels on its long side, so
one threshold fits frames of any resolution. Smooth surfaces are legitimately low in it, so the scanner
compares each image with the median of its own class rather than with one absolute number only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MEASURE_SIDE = 512
DARK_LEVEL = 8  # grey levels at or below count as crushed black
BRIGHT_LEVEL = 247  # at or above: blown-out white


@dataclass(frozen=True, slots=True)
class Exposure:
    """Mean brightness and the shares of crushed-black and blown-out pixels."""

    mean: float
    dark_fraction: float
    bright_fraction: float


def measurement_copy(image: np.ndarray) -> np.ndarray:
    """Grey, at most ``MEASURE_SIDE`` pixels on the long side."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = MEASURE_SIDE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return grey


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian: low for blurred images."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def exposure(grey: np.ndarray) -> Exposure:
    return Exposure(
        mean=float(grey.mean()),
        dark_fraction=float(np.mean(grey <= DARK_LEVEL)),
        bright_fraction=float(np.mean(grey >= BRIGHT_LEVEL)),
    )


def truncation_problem(data: bytes) -> str | None:
    """Why a JPEG or PNG file looks cut short, or None. Decoders often return a half-grey image for a
    truncated file instead of failing, so the end markers are checked directly."""
    # Only files that start like their kind are judged: anything else is simply not that format.
    if data.startswith(b"\xff\xd8") and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "JPEG without end-of-image marker (truncated)"
    if data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" not in data[-16:]:
        return "PNG without IEND chunk (truncated)"
    return None
