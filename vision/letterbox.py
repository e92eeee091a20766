"""Aspect-preserving letterbox geometry: where an image lands inside the model input, and boxes both ways.

Stretching a 2048x256 line-scan strip to 320x320 makes a round pit an 8:1 ellipse and a scratch along the
strip eight times thinner; a letterbox scales by one factor and pads the rest. Images smaller than the
input are not blown up (``allow_upscale=False``): enlarging a 64x64 crop to 640 invents pixels and moves
its defects to a scale the model never saw; it is pasted at its own size instead.

Boxes are ``x_min, y_min, x_max, y_max`` normalized to [0, 1] of their frame (the image's or the input's),
as everywhere in lineguard. Pure arithmetic, no OpenCV, so training, serving and tests share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Letterbox:
    """An image of ``image_width x image_height`` scaled by ``scale`` and pasted at ``(pad_x, pad_y)``
    (pixels) into an input of ``input_width x input_height``."""

    image_width: int
    image_height: int
    input_width: int
    input_height: int
    scale: float
    pad_x: int
    pad_y: int

    @property
    def content_width(self) -> int:
        return round(self.image_width * self.scale)

    @property
    def content_height(self) -> int:
        return round(self.image_height * self.scale)


def letterbox_for(
    image_width: int, image_height: int, input_width: int, input_height: int, allow_upscale: bool = True
) -> Letterbox:
    """The largest aspect-keeping fit (capped at 1 without ``allow_upscale``), centred."""
    if min(image_width, image_height, input_width, input_height) < 1:
        raise ValueError("image and input sizes must be positive")
    scale = min(input_width / image_width, input_height / image_height)
    if not allow_upscale:
        scale = min(scale, 1.0)
    content_w = round(image_width * scale)
    content_h = round(image_height * scale)
    return Letterbox(
        image_width,
        image_height,
        input_width,
        input_height,
        scale,
        (input_width - content_w) // 2,
        (input_height - content_h) // 2,
    )


def image_to_input(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """Boxes normalized to the image -> normalized to the letterboxed input."""
    out = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] * box.content_width + box.pad_x) / box.input_width
    out[:, [1, 3]] = (out[:, [1, 3]] * box.content_height + box.pad_y) / box.input_height
    return out


def input_to_image(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """Boxes normalized to the letterboxed input (a model's output) -> normalized to the original image,
    clipped to it (a box that reaches into the padding ends at the image's edge)."""
    out = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] * box.input_width - box.pad_x) / box.content_width
    out[:, [1, 3]] = (out[:, [1, 3]] * box.input_height - box.pad_y) / box.content_height
    return np.clip(out, 0.0, 1.0)
