"""Crops of a prepared image with its boxes and mask: train at the serving resolution on a part of the frame.

Industrial defects are small against the part: a 30 px pit on a 1130 px spindle, a 20 px spur on a 640 px PCB.
Shrinking the whole frame to what 2 CPU cores can train on in minutes leaves a few pixels of each defect
(the segmenter collapsed to background at 320x128). Every network here is fully convolutional, so it can learn
on crops at a high input resolution and serve the whole frame at that resolution with the same weights: the
cost of a training step follows the crop, the detail follows the input size.

Pure NumPy. Boxes are normalized to the image they belong to (:class:`vision.samples.BoxLabel`); a box cut by
the crop edge is kept, clipped, only while at least ``min_visible`` of its area stays inside (a sliver of a
defect at the border would teach the detector to fire on edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision.samples import BoxLabel

DEFAULT_MIN_VISIBLE = 0.4


@dataclass(frozen=True, slots=True)
class Crop:
    image: np.ndarray
    boxes: tuple[BoxLabel, ...]
    mask: np.ndarray | None


def crop_boxes(
    boxes: tuple[BoxLabel, ...],
    image_size: tuple[int, int],
    origin: tuple[int, int],
    crop_size: tuple[int, int],
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> tuple[BoxLabel, ...]:
    """``boxes`` (normalized to an image of ``image_size`` = (width, height)) seen through the crop at
    ``origin`` = (x, y) of ``crop_size`` = (width, height) pixels, normalized to the crop."""
    width, height = image_size
    x0, y0 = origin
    crop_w, crop_h = crop_size
    kept: list[BoxLabel] = []
    for box in boxes:
        bx0, bx1 = box.x_min * width, box.x_max * width
        by0, by1 = box.y_min * height, box.y_max * height
        cx0, cx1 = max(bx0, x0), min(bx1, x0 + crop_w)
        cy0, cy1 = max(by0, y0), min(by1, y0 + crop_h)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        area = max((bx1 - bx0) * (by1 - by0), 1e-9)
        if (cx1 - cx0) * (cy1 - cy0) / area < min_visible:
            continue
        kept.append(
            BoxLabel(
                box.label, (cx0 - x0) / crop_w, (cy0 - y0) / crop_h, (cx1 - x0) / crop_w, (cy1 - y0) / crop_h
            )
        )
    return tuple(kept)


def crop_at(
    image: np.ndarray,
    boxes: tuple[BoxLabel, ...],
    mask: np.ndarray | None,
    origin: tuple[int, int],
    crop_size: tuple[int, int],
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Crop:
    """The crop of ``crop_size`` = (width, height) at ``origin`` = (x, y); it must lie inside the image."""
    height, width = image.shape[:2]
    x0, y0 = origin
    crop_w, crop_h = crop_size
    if x0 < 0 or y0 < 0 or x0 + crop_w > width or y0 + crop_h > height:
        raise ValueError(f"crop {crop_w}x{crop_h} at ({x0}, {y0}) leaves the {width}x{height} image")
    return Crop(
        image[y0 : y0 + crop_h, x0 : x0 + crop_w],
        crop_boxes(boxes, (width, height), origin, crop_size, min_visible),
        None if mask is None else mask[y0 : y0 + crop_h, x0 : x0 + crop_w],
    )


def random_origin(
    image_size: tuple[int, int], crop_size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int]:
    """A uniformly drawn top-left corner that keeps the crop inside the image."""
    return (
        int(rng.integers(image_size[0] - crop_size[0] + 1)),
        int(rng.integers(image_size[1] - crop_size[1] + 1)),
    )


def tile_origins(image_size: tuple[int, int], crop_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Corners of the fewest crops that cover the image, evenly spread (the last ones overlap the others
    rather than leaving the image): deterministic validation crops."""

    def starts(side: int, crop: int) -> list[int]:
        if crop >= side:
            return [0]
        count = -(-side // crop)
        return [round(i * (side - crop) / (count - 1)) for i in range(count)]

    return [(x, y) for y in starts(image_size[1], crop_size[1]) for x in starts(image_size[0], crop_size[0])]


def origin_containing(
    box: BoxLabel, image_size: tuple[int, int], crop_size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int]:
    """A uniformly drawn top-left corner of a crop that holds the whole ``box`` (normalized to an image of
    ``image_size`` = (width, height)) and stays inside the image; along a side where the box is longer than
    the crop, a corner whose crop lies inside the box (as much of the box as fits). Class-balanced sampling
    (:mod:`vision.balanced_sampling`) crops around the instance it drew this way."""

    def start(low_px: float, high_px: float, side: int, crop: int) -> int:
        lowest, highest = 0, side - crop
        first, last = (high_px - crop, low_px) if high_px - low_px <= crop else (low_px, high_px - crop)
        lo = min(max(int(np.ceil(first)), lowest), highest)
        hi = max(min(int(np.floor(last)), highest), lo)
        return int(rng.integers(lo, hi + 1))

    width, height = image_size
    return (
        start(box.x_min * width, box.x_max * width, width, crop_size[0]),
        start(box.y_min * height, box.y_max * height, height, crop_size[1]),
    )
