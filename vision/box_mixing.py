"""Mosaic and copy-paste for detection training: more images and more instances per training example, with
every box kept exact.

- **Mosaic** (YOLOv4): the example is cut into four regions around a random centre and each region is filled
  with a piece of another training image at its own scale (no resizing: the served network sees the part at
  the same pixels per millimetre as in training, and a defect's size is part of what it learns). A box is
  moved by its region's offset; one cut by its region's edge is clipped, or dropped when less than
  ``min_visible`` of it stays (the same rule as :mod:`vision.crops`).
- **Copy-paste**: a labelled instance of another training image, with a margin of its surroundings, is
  pasted where it covers no box of the example; its box moves with it. The margin keeps the seam of the patch
  away from the box edges, so the box regression does not learn to snap to a seam that real images lack.

Pure NumPy. Boxes are :class:`~vision.samples.BoxLabel`, normalized to the image they belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.crops import Crop
from vision.samples import BoxLabel

# Mosaic centres are drawn in the middle half of each side: no region is thinner than a quarter.
CENTRE_RANGE = (0.25, 0.75)
# Copy-paste: the margin around a pasted instance, as a share of its longer side, and the placement tries.
PASTE_MARGIN = 0.25
PASTE_TRIES = 10

Region = tuple[int, int, int, int]  # x, y, width, height in pixels


def mosaic_regions(canvas_size: tuple[int, int], centre: tuple[int, int]) -> list[Region]:
    """The four regions (top-left, top-right, bottom-left, bottom-right) of a ``canvas_size`` = (width,
    height) canvas split at ``centre`` = (x, y)."""
    width, height = canvas_size
    cx, cy = centre
    if not (0 < cx < width and 0 < cy < height):
        raise ValueError(f"mosaic centre {centre} is not inside the {width}x{height} canvas")
    return [
        (0, 0, cx, cy),
        (cx, 0, width - cx, cy),
        (0, cy, cx, height - cy),
        (cx, cy, width - cx, height - cy),
    ]


def mosaic_centre(canvas_size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    low, high = CENTRE_RANGE
    return tuple(  # type: ignore[return-value]
        int(rng.integers(max(1, round(side * low)), min(side - 1, round(side * high)) + 1))
        for side in canvas_size
    )


def place_boxes(
    boxes: Sequence[BoxLabel], region: Region, canvas_size: tuple[int, int]
) -> tuple[BoxLabel, ...]:
    """Boxes normalized to a piece that fills ``region`` of the canvas, normalized to the canvas."""
    x0, y0, w, h = region
    width, height = canvas_size
    return tuple(
        BoxLabel(
            b.label,
            (x0 + b.x_min * w) / width,
            (y0 + b.y_min * h) / height,
            (x0 + b.x_max * w) / width,
            (y0 + b.y_max * h) / height,
        )
        for b in boxes
    )


def mosaic(pieces: Sequence[Crop], centre: tuple[int, int]) -> Crop:
    """Four pieces, each already of its region's size (see :func:`mosaic_regions`; cut them with
    :func:`vision.crops.crop_at`, which clips their boxes), tiled into one canvas with their boxes and masks.
    Images may be uint8 or float (standardized pieces); masks all or none."""
    if len(pieces) != 4:
        raise ValueError(f"a mosaic takes 4 pieces, got {len(pieces)}")
    top_left, top_right, bottom_left, bottom_right = pieces
    canvas_size = (
        top_left.image.shape[1] + top_right.image.shape[1],
        top_left.image.shape[0] + bottom_left.image.shape[0],
    )
    regions = mosaic_regions(canvas_size, centre)
    for piece, (_, _, w, h) in zip(pieces, regions, strict=True):
        if piece.image.shape[:2] != (h, w):
            raise ValueError(
                f"mosaic piece of {piece.image.shape[1]}x{piece.image.shape[0]} for a {w}x{h} region"
            )
    image = np.concatenate(
        [
            np.concatenate([top_left.image, top_right.image], axis=1),
            np.concatenate([bottom_left.image, bottom_right.image], axis=1),
        ],
        axis=0,
    )
    masks = [p.mask for p in pieces]
    mask = None
    if all(m is not None for m in masks):
        tl, tr, bl, br = masks
        mask = np.concatenate([np.concatenate([tl, tr], axis=1), np.concatenate([bl, br], axis=1)], axis=0)
    boxes = tuple(
        b
        for piece, region in zip(pieces, regions, strict=True)
        for b in place_boxes(piece.boxes, region, canvas_size)
    )
    return Crop(image, boxes, mask)


@dataclass(frozen=True, slots=True)
class Patch:
    """A cut-out instance: its pixels (with a margin of surroundings) and its box in the patch's pixels."""

    image: np.ndarray
    label: str
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in patch pixels


def cut_patch(image: np.ndarray, box: BoxLabel, margin: float = PASTE_MARGIN) -> Patch:
    """The instance ``box`` of ``image`` with ``margin`` times its longer side of surroundings on every side
    (less where the image ends); the patch's corners are whole pixels that contain the box."""
    height, width = image.shape[:2]
    bx0, by0, bx1, by1 = box.x_min * width, box.y_min * height, box.x_max * width, box.y_max * height
    pad = margin * max(bx1 - bx0, by1 - by0)
    # Whole pixels, with a hair of tolerance: 0.55 * 100 is 55.00000000000001 in floating point.
    x0, y0 = max(0, int(np.floor(bx0 - pad + 1e-6))), max(0, int(np.floor(by0 - pad + 1e-6)))
    x1, y1 = min(width, int(np.ceil(bx1 + pad - 1e-6))), min(height, int(np.ceil(by1 + pad - 1e-6)))
    return Patch(image[y0:y1, x0:x1].copy(), box.label, (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0))


def _overlaps(
    rect: tuple[float, float, float, float], boxes: Sequence[BoxLabel], size: tuple[int, int]
) -> bool:
    x0, y0, x1, y1 = rect
    width, height = size
    return any(
        x0 < b.x_max * width and b.x_min * width < x1 and y0 < b.y_max * height and b.y_min * height < y1
        for b in boxes
    )


def paste_patch(
    image: np.ndarray, boxes: tuple[BoxLabel, ...], patch: Patch, origin: tuple[int, int]
) -> tuple[np.ndarray, tuple[BoxLabel, ...]]:
    """``patch`` written into a copy of ``image`` with its top-left corner at ``origin`` = (x, y); its box is
    appended to ``boxes`` (the others keep their order). The patch must fit inside the image."""
    height, width = image.shape[:2]
    ph, pw = patch.image.shape[:2]
    x, y = origin
    if x < 0 or y < 0 or x + pw > width or y + ph > height:
        raise ValueError(f"a {pw}x{ph} patch at {origin} leaves the {width}x{height} image")
    out = image.copy()
    out[y : y + ph, x : x + pw] = patch.image.reshape(out[y : y + ph, x : x + pw].shape)
    bx0, by0, bx1, by1 = patch.box
    pasted = BoxLabel(
        patch.label, (x + bx0) / width, (y + by0) / height, (x + bx1) / width, (y + by1) / height
    )
    return out, (*boxes, pasted)


def copy_paste(
    image: np.ndarray,
    boxes: tuple[BoxLabel, ...],
    patches: Sequence[Patch],
    rng: np.random.Generator,
    tries: int = PASTE_TRIES,
) -> tuple[np.ndarray, tuple[BoxLabel, ...]]:
    """Paste each patch at a random place where the whole patch covers no box, already there or pasted
    before it; a patch that finds no free place in ``tries`` draws (or is larger than the image) is left
    out."""
    height, width = image.shape[:2]
    for patch in patches:
        ph, pw = patch.image.shape[:2]
        if pw > width or ph > height:
            continue
        for _ in range(tries):
            x, y = int(rng.integers(width - pw + 1)), int(rng.integers(height - ph + 1))
            if not _overlaps((x, y, x + pw, y + ph), boxes, (width, height)):
                image, boxes = paste_patch(image, boxes, patch, (x, y))
                break
    return image, boxes
