"""FCOS-style target assignment over feature levels at several strides (NumPy; for a multi-scale head).

Each level's points are the centres of its cells, ``((col + 0.5) * stride, (row + 0.5) * stride)`` in input
pixels. A point is a positive of a box when

1. it lies inside the box's *centre region*: the box shrunk to ``radius * stride`` around its centre, but
   never beyond the box itself (centre sampling keeps the edges of big defects out of the positives); a
   box thinner than one cell still gets the point nearest its centre, so 2-px scratches and pits are never
   left without a positive;
2. the level suits the box: its largest distance to the box's sides falls in the level's range
   ``(bounds[i], bounds[i + 1]]``. The bounds come from the strides (``4 * stride`` per level, FCOS's
   64/128/... scaled to small inputs), not from one data set;
3. among boxes that claim the same point, the one with the smallest area wins (the tiny defect on top of
   a large one is the one a point would otherwise never learn).

Targets per point: a class id (``-1`` for background) and the box as ``x_min, y_min, x_max, y_max`` in
input pixels (zeros for background).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_STRIDES = (8, 16, 32)
DEFAULT_RADIUS = 1.5


@dataclass(frozen=True)
class LevelPoints:
    """All levels' points, concatenated level by level, row-major inside a level."""

    xy: np.ndarray  # (P, 2) float32 centres in input pixels
    stride: np.ndarray  # (P,) float32
    level: np.ndarray  # (P,) int32


def level_points(
    input_width: int, input_height: int, strides: Sequence[int] = DEFAULT_STRIDES
) -> LevelPoints:
    """The cell centres of every level, in the order a head that flattens each level and concatenates them
    emits its outputs."""
    xy, stride, level = [], [], []
    for index, s in enumerate(strides):
        if input_width % s or input_height % s:
            raise ValueError(f"input {input_width}x{input_height} is not a multiple of stride {s}")
        cols, rows = np.meshgrid(np.arange(input_width // s), np.arange(input_height // s))
        points = np.stack([(cols.ravel() + 0.5) * s, (rows.ravel() + 0.5) * s], axis=1)
        xy.append(points.astype(np.float32))
        stride.append(np.full(len(points), s, np.float32))
        level.append(np.full(len(points), index, np.int32))
    return LevelPoints(np.concatenate(xy), np.concatenate(stride), np.concatenate(level))


def level_bounds(strides: Sequence[int]) -> np.ndarray:
    """``(L + 1,)`` regression-range bounds: 0, then ``4 * stride`` between levels, then infinity."""
    inner = [4.0 * s for s in strides[:-1]]
    return np.array([0.0, *inner, np.inf], dtype=np.float32)


def assign_targets(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    points: LevelPoints,
    strides: Sequence[int] = DEFAULT_STRIDES,
    radius: float = DEFAULT_RADIUS,
) -> tuple[np.ndarray, np.ndarray]:
    """``boxes`` ``(B, 4)`` in input pixels, ``class_ids`` ``(B,)`` -> per point class ids ``(P,)`` (int32,
    -1 background) and boxes ``(P, 4)`` (float32)."""
    count = len(points.xy)
    classes = np.full(count, -1, np.int32)
    targets = np.zeros((count, 4), np.float32)
    if len(boxes) == 0:
        return classes, targets
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    x = points.xy[:, 0:1]
    y = points.xy[:, 1:2]
    left, top = x - boxes[None, :, 0], y - boxes[None, :, 1]
    right, bottom = boxes[None, :, 2] - x, boxes[None, :, 3] - y
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    reach = radius * points.stride[:, None]
    in_centre = (
        (x > np.maximum(cx - reach, boxes[:, 0]))
        & (x < np.minimum(cx + reach, boxes[:, 2]))
        & (y > np.maximum(cy - reach, boxes[:, 1]))
        & (y < np.minimum(cy + reach, boxes[:, 3]))
    )
    largest = np.maximum(np.maximum(left, top), np.maximum(right, bottom))
    bounds = level_bounds(strides)
    low, high = bounds[points.level][:, None], bounds[points.level + 1][:, None]
    fits = (largest > low) & (largest <= high)
    candidate = in_centre & fits
    _ensure_one_positive(candidate, boxes, points, bounds)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cost = np.where(candidate, area[None, :], np.inf)
    best = cost.argmin(axis=1)
    positive = np.isfinite(cost[np.arange(count), best])
    classes[positive] = np.asarray(class_ids, np.int32)[best[positive]]
    targets[positive] = boxes[best[positive]]
    return classes, targets


def _ensure_one_positive(
    candidate: np.ndarray, boxes: np.ndarray, points: LevelPoints, bounds: np.ndarray
) -> None:
    """A box without any candidate point (thinner than a cell, or between cell centres) takes the point
    nearest its centre on the level its half-diagonal suits."""
    for b in np.flatnonzero(~candidate.any(axis=0)):
        x1, y1, x2, y2 = boxes[b]
        half = max(x2 - x1, y2 - y1) / 2
        level = int(np.clip(np.searchsorted(bounds, half, side="left") - 1, 0, len(bounds) - 2))
        on_level = np.flatnonzero(points.level == level)
        centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float32)
        nearest = on_level[np.argmin(np.square(points.xy[on_level] - centre).sum(axis=1))]
        candidate[nearest, b] = True
