"""Training hooks of the multi-scale detector: targets from a sample's boxes, and its decoding fields."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schemas.vocabulary import Task
from vision.nets.fcos import fcos_targets
from vision.outputs import DEFAULT_DECODING, POINTS_HEAD
from vision.preprocess import PreprocessSpec
from vision.samples import BoxLabel


def point_targets(boxes: Sequence[BoxLabel], classes: Sequence[str], spec: PreprocessSpec) -> np.ndarray:
    """``(P, K + 4)`` targets for :func:`vision.nets.fcos.fcos_loss`; unknown classes are left out."""
    kept = [b for b in boxes if b.label in classes]
    coords = np.array([[b.x_min, b.y_min, b.x_max, b.y_max] for b in kept], np.float32).reshape(-1, 4)
    ids = np.array([list(classes).index(b.label) for b in kept], np.int32)
    return fcos_targets(coords, ids, len(classes), spec.width, spec.height)


def point_decoding() -> dict[str, float | int | str]:
    """The artifact's decoding fields: the detection defaults without the single stride, plus the head."""
    decoding = {k: v for k, v in DEFAULT_DECODING[Task.DETECTION].items() if k != "stride"}
    return {**decoding, "head": POINTS_HEAD}
