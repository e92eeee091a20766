"""Detection metrics, pure NumPy: box IoU, precision-recall curves, AP and mAP (re-exported by
:mod:`vision.metrics`).

AP uses all-point interpolation (Pascal VOC 2010+): the area under the precision envelope at every recall
step. Predictions are matched greedily in descending score order, per class, each to the unmatched
ground-truth box of the same image with the highest IoU, a match counting when IoU >= the threshold (COCO's
rule). mAP averages over classes that have ground truth; mAP@0.5:0.95 averages mAP over the ten IoU
thresholds 0.50, 0.55, ..., 0.95 (COCO), each computed with all-point interpolation (COCO's own tool samples
101 recall points, which differs by a fraction of a point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.samples import BoxLabel

COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True, slots=True)
class ScoredBox:
    """A predicted box: normalized corners (like :class:`BoxLabel`) and a confidence."""

    label: str
    score: float
    x_min: float
    y_min: float
    x_max: float
    y_max: float


def box_iou(a: BoxLabel | ScoredBox, b: BoxLabel | ScoredBox) -> float:
    """Intersection over union of two axis-aligned boxes."""
    width = min(a.x_max, b.x_max) - max(a.x_min, b.x_min)
    height = min(a.y_max, b.y_max) - max(a.y_min, b.y_min)
    intersection = max(0.0, width) * max(0.0, height)
    area_a = (a.x_max - a.x_min) * (a.y_max - a.y_min)
    area_b = (b.x_max - b.x_min) * (b.y_max - b.y_min)
    union = area_a + area_b - intersection
    return intersection / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PrecisionRecallCurve:
    """Precision and recall after each prediction, in descending score order."""

    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    num_ground_truth: int


def all_point_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision envelope, summed at every recall change (VOC 2010+)."""
    recall_steps = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    envelope = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    changes = np.nonzero(recall_steps[1:] != recall_steps[:-1])[0]
    return float(np.sum((recall_steps[changes + 1] - recall_steps[changes]) * envelope[changes + 1]))


def match_greedily(
    truth: Sequence[BoxLabel], ranked: Sequence[ScoredBox], iou_threshold: float
) -> np.ndarray:
    """Which of one image's predictions (one class, best score first) find a true box: each takes the
    unmatched true box it overlaps most (the first of equals) and is a hit when that IoU reaches
    ``iou_threshold``."""
    matched = np.zeros(len(truth), dtype=bool)
    hits = np.zeros(len(ranked), dtype=bool)
    for rank, box in enumerate(ranked):
        best, best_iou = -1, -1.0
        for j, candidate in enumerate(truth):
            overlap = box_iou(box, candidate)
            if not matched[j] and overlap > best_iou:
                best, best_iou = j, overlap
        if best >= 0 and best_iou >= iou_threshold:
            matched[best] = True
            hits[rank] = True
    return hits


def precision_recall_curve(
    ground_truth: Sequence[Sequence[BoxLabel]],
    predictions: Sequence[Sequence[ScoredBox]],
    label: str,
    iou_threshold: float,
) -> PrecisionRecallCurve:
    """Match one class's predictions to its ground truth over all images (index i = image i) greedily."""
    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} images of ground truth but {len(predictions)} of predictions")
    truth = [[box for box in boxes if box.label == label] for boxes in ground_truth]
    ranked: list[tuple[ScoredBox, bool]] = []
    for image, boxes in enumerate(predictions):
        # Matching never crosses images, so each image is matched alone, best score first.
        own = sorted((box for box in boxes if box.label == label), key=lambda box: -box.score)
        ranked += zip(own, match_greedily(truth[image], own, iou_threshold).tolist(), strict=True)
    # A stable sort keeps equal scores in input order, so results do not depend on the sort algorithm.
    ranked.sort(key=lambda item: -item[0].score)
    hits = np.array([hit for _, hit in ranked], dtype=bool)
    num_ground_truth = sum(len(boxes) for boxes in truth)
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(ranked) + 1) if ranked else np.zeros(0)
    recall = true_positives / num_ground_truth if num_ground_truth else np.zeros(len(ranked))
    return PrecisionRecallCurve(
        precision=precision.astype(np.float64),
        recall=recall.astype(np.float64),
        scores=np.array([box.score for box, _ in ranked], dtype=np.float64),
        num_ground_truth=num_ground_truth,
    )


def average_precision(
    ground_truth: Sequence[Sequence[BoxLabel]],
    predictions: Sequence[Sequence[ScoredBox]],
    label: str,
    iou_threshold: float = 0.5,
) -> float:
    """All-point AP of one class at one IoU threshold (0.0 when the class has ground truth but no hits)."""
    curve = precision_recall_curve(ground_truth, predictions, label, iou_threshold)
    return all_point_average_precision(curve.recall, curve.precision) if curve.num_ground_truth else 0.0


def detection_metrics(
    ground_truth: Sequence[Sequence[BoxLabel]],
    predictions: Sequence[Sequence[ScoredBox]],
    classes: Sequence[str] | None = None,
) -> dict:
    """mAP@0.5, mAP@0.5:0.95 and per-class AP over the classes that have ground truth, JSON-ready."""
    names = (
        list(classes) if classes is not None else sorted({b.label for boxes in ground_truth for b in boxes})
    )
    counts = {name: sum(1 for boxes in ground_truth for b in boxes if b.label == name) for name in names}
    evaluated = [name for name in names if counts[name] > 0]
    per_class: dict[str, dict] = {}
    for name in evaluated:
        by_threshold = [average_precision(ground_truth, predictions, name, t) for t in COCO_IOU_THRESHOLDS]
        per_class[name] = {
            "ap50": by_threshold[0],
            "ap75": by_threshold[COCO_IOU_THRESHOLDS.index(0.75)],
            "ap50_95": float(np.mean(by_threshold)),
            "ground_truth": counts[name],
            "predictions": sum(1 for boxes in predictions for b in boxes if b.label == name),
        }
    return {
        "map50": float(np.mean([per_class[n]["ap50"] for n in evaluated])) if evaluated else 0.0,
        "map50_95": float(np.mean([per_class[n]["ap50_95"] for n in evaluated])) if evaluated else 0.0,
        "per_class": per_class,
        "classes_without_ground_truth": [n for n in names if counts[n] == 0],
        "images": len(ground_truth),
    }
