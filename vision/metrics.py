"""Evaluation metrics, pure NumPy: classification, detection (AP / mAP), segmentation (IoU, Dice) and anomaly
detection (AUROC, calibrated thresholds).

Definitions follow the references people compare against, so a figure here means what it means elsewhere:

- detection AP and mAP: see :mod:`vision.metrics_detection` (all-point interpolation, COCO's matching
  rule), re-exported here so callers have one place to import metrics from.
- segmentation IoU and Dice are accumulated over the whole dataset per class (sum of intersections over sum
  of unions), so large images do not count more than their pixels and empty images do not count as perfect.
- AUROC is the Mann-Whitney statistic on average ranks, so tied scores count one half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Detection lives in its own module; callers keep importing it from here.
from vision.metrics_detection import COCO_IOU_THRESHOLDS as COCO_IOU_THRESHOLDS
from vision.metrics_detection import PrecisionRecallCurve as PrecisionRecallCurve
from vision.metrics_detection import ScoredBox as ScoredBox
from vision.metrics_detection import all_point_average_precision as all_point_average_precision
from vision.metrics_detection import average_precision as average_precision
from vision.metrics_detection import box_iou as box_iou
from vision.metrics_detection import detection_metrics as detection_metrics
from vision.metrics_detection import match_greedily as match_greedily
from vision.metrics_detection import precision_recall_curve as precision_recall_curve

# ------------------------------------------------------------------------------------------ classification


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} true labels but {pred.size} predictions")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """The fraction of predictions equal to the truth."""
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.size == 0:
        raise ValueError("accuracy of no predictions is undefined")
    return float(np.mean(true == pred))


@dataclass(frozen=True, slots=True)
class ClassScores:
    """Precision, recall and F1 of one class (0.0 where undefined: no predictions or no support)."""

    precision: float
    recall: float
    f1: float
    support: int


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def per_class_scores(matrix: np.ndarray) -> list[ClassScores]:
    """Per-class precision, recall and F1 from a confusion matrix (rows true, columns predicted)."""
    scores = []
    for k in range(matrix.shape[0]):
        true_positive = float(matrix[k, k])
        precision = _ratio(true_positive, float(matrix[:, k].sum()))
        recall = _ratio(true_positive, float(matrix[k, :].sum()))
        f1 = _ratio(2 * precision * recall, precision + recall)
        scores.append(ClassScores(precision, recall, f1, int(matrix[k, :].sum())))
    return scores


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """Accuracy, per-class and macro precision/recall/F1 and the confusion matrix, as JSON-ready data."""
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    scores = per_class_scores(matrix)
    present = [s for s in scores if s.support > 0]
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_precision": float(np.mean([s.precision for s in present])) if present else 0.0,
        "macro_recall": float(np.mean([s.recall for s in present])) if present else 0.0,
        "macro_f1": float(np.mean([s.f1 for s in present])) if present else 0.0,
        "per_class": {
            name: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
            for name, s in zip(classes, scores, strict=True)
        },
        "classes": list(classes),
        "confusion_matrix": matrix.tolist(),
    }


# ------------------------------------------------------------------------------------------ segmentation


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two binary masks; two empty masks agree perfectly (1.0)."""
    pred, true = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    union = np.logical_or(pred, true).sum()
    return float(np.logical_and(pred, true).sum() / union) if union else 1.0


def mask_dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice (F1 over pixels) of two binary masks; two empty masks agree perfectly (1.0)."""
    pred, true = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    total = pred.sum() + true.sum()
    return float(2 * np.logical_and(pred, true).sum() / total) if total else 1.0


def segmentation_metrics(
    predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], classes: Sequence[str]
) -> dict:
    """Per-class IoU and Dice accumulated over the dataset (mask value k = classes[k - 1], 0 = background),
    their means over classes that occur, and the binary defect-vs-background IoU and Dice."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(truth)} true masks but {len(predicted)} predicted")
    num = len(classes) + 1
    intersection = np.zeros(num, dtype=np.int64)
    predicted_area = np.zeros(num, dtype=np.int64)
    true_area = np.zeros(num, dtype=np.int64)
    for pred, true in zip(predicted, truth, strict=True):
        if pred.shape != true.shape:
            raise ValueError(f"mask shapes differ: predicted {pred.shape}, true {true.shape}")
        pred_flat = np.clip(pred.astype(np.int64).ravel(), 0, num - 1)
        true_flat = np.clip(true.astype(np.int64).ravel(), 0, num - 1)
        predicted_area += np.bincount(pred_flat, minlength=num)
        true_area += np.bincount(true_flat, minlength=num)
        intersection += np.bincount(true_flat[pred_flat == true_flat], minlength=num)
    per_class: dict[str, dict] = {}
    for k, name in enumerate(classes, start=1):
        union = predicted_area[k] + true_area[k] - intersection[k]
        if union == 0:
            continue  # the class occurs nowhere, in truth or prediction: nothing to score
        per_class[name] = {
            "iou": float(intersection[k] / union),
            "dice": float(2 * intersection[k] / (predicted_area[k] + true_area[k])),
            "true_pixels": int(true_area[k]),
            "predicted_pixels": int(predicted_area[k]),
        }
    defect_pred = [np.asarray(p) > 0 for p in predicted]
    defect_true = [np.asarray(t) > 0 for t in truth]
    both = int(sum(np.logical_and(p, t).sum() for p, t in zip(defect_pred, defect_true, strict=True)))
    either = int(sum(np.logical_or(p, t).sum() for p, t in zip(defect_pred, defect_true, strict=True)))
    sizes = int(sum(p.sum() + t.sum() for p, t in zip(defect_pred, defect_true, strict=True)))
    return {
        "mean_iou": float(np.mean([c["iou"] for c in per_class.values()])) if per_class else 0.0,
        "mean_dice": float(np.mean([c["dice"] for c in per_class.values()])) if per_class else 0.0,
        "defect_iou": both / either if either else 1.0,
        "defect_dice": 2 * both / sizes if sizes else 1.0,
        "per_class": per_class,
        "images": len(truth),
    }


# ------------------------------------------------------------------------------------------ anomaly


def _binary_inputs(scores: Sequence[float], labels: Sequence[int | bool]) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels).astype(bool)
    if values.shape != positive.shape or values.ndim != 1:
        raise ValueError(f"{values.size} scores but {positive.size} labels")
    if positive.all() or not positive.any():
        raise ValueError("needs both positive (defect) and negative (good) examples")
    return values, positive


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def auroc(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Area under the ROC curve (label 1 = defect, higher score = more anomalous); ties count one half."""
    values, positive = _binary_inputs(scores, labels)
    ranks = average_ranks(values)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True, slots=True)
class RocCurve:
    """False and true positive rates when flagging ``score >= threshold``, thresholds descending."""

    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray
    thresholds: np.ndarray


def _descending_counts(values: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores, highest first, with the positives and negatives flagged at each (``score >= t``).
    One sort, so curves over a million scores stay cheap."""
    order = np.argsort(-values, kind="stable")
    ranked, hits = values[order], positive[order]
    true_positives = np.cumsum(hits)
    false_positives = np.cumsum(~hits)
    # The last position of each run of equal scores: everything up to it scores >= that value.
    last = np.concatenate((np.nonzero(np.diff(ranked))[0], [len(ranked) - 1]))
    return ranked[last], true_positives[last].astype(np.float64), false_positives[last].astype(np.float64)


def roc_curve(scores: Sequence[float], labels: Sequence[int | bool]) -> RocCurve:
    """The ROC curve, one point per distinct score plus the (0, 0) start."""
    values, positive = _binary_inputs(scores, labels)
    thresholds, flagged_positive, flagged_negative = _descending_counts(values, positive)
    return RocCurve(
        false_positive_rate=np.concatenate(([0.0], flagged_negative / (~positive).sum())),
        true_positive_rate=np.concatenate(([0.0], flagged_positive / positive.sum())),
        thresholds=np.concatenate(([np.inf], thresholds)),
    )


@dataclass(frozen=True, slots=True)
class CalibratedThreshold:
    """A decision threshold (flag a defect when ``score >= threshold``) and what it achieves on the data."""

    threshold: float
    precision: float
    recall: float
    f1: float
    false_reject_rate: float  # good parts flagged as defects


def _at_threshold(values: np.ndarray, positive: np.ndarray, threshold: float) -> CalibratedThreshold:
    flagged = values >= threshold
    true_positive = float(np.logical_and(flagged, positive).sum())
    precision = _ratio(true_positive, float(flagged.sum()))
    recall = _ratio(true_positive, float(positive.sum()))
    return CalibratedThreshold(
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        f1=_ratio(2 * precision * recall, precision + recall),
        false_reject_rate=_ratio(float(np.logical_and(flagged, ~positive).sum()), float((~positive).sum())),
    )


def with_margin(values: np.ndarray, threshold: float) -> float:
    """A threshold that flags exactly the same observed scores as ``threshold`` but sits halfway between
    the lowest flagged score and the highest unflagged one, so new data a little off either side is still
    decided as on the calibration set (a threshold right on an observed score has no margin at all)."""
    flagged = values[values >= threshold]
    if flagged.size == 0:
        return threshold
    lowest_flagged = float(flagged.min())
    below = values[values < lowest_flagged]
    if below.size == 0:
        return lowest_flagged
    middle = (float(below.max()) + lowest_flagged) / 2.0
    # Neighbouring floats have no midpoint between them; keep the observed score then.
    return middle if float(below.max()) < middle <= lowest_flagged else lowest_flagged


def max_f1_threshold(scores: Sequence[float], labels: Sequence[int | bool]) -> CalibratedThreshold:
    """The decision with the highest F1 among those the observed scores allow (ties: the one flagging fewest
    images, which rejects fewest good parts), as a threshold with margin (:func:`with_margin`)."""
    values, positive = _binary_inputs(scores, labels)
    thresholds, true_positives, false_positives = _descending_counts(values, positive)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / positive.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    # Thresholds run from high to low, so the first (near-)maximum is the highest threshold among equals;
    # the tolerance keeps float rounding from breaking an exact tie (2/3 computed two ways).
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[0])
    return _at_threshold(values, positive, with_margin(values, float(thresholds[best])))


def false_reject_threshold(
    scores: Sequence[float], labels: Sequence[int | bool], max_false_reject_rate: float
) -> CalibratedThreshold:
    """The decision catching the most defects whose false-reject rate on the good examples stays at or below
    ``max_false_reject_rate``, as a threshold with margin (:func:`with_margin`)."""
    if not 0.0 <= max_false_reject_rate <= 1.0:
        raise ValueError(f"false-reject rate must be within [0, 1], got {max_false_reject_rate}")
    values, positive = _binary_inputs(scores, labels)
    good = values[~positive]
    # Candidates: every observed score and one just above the highest good score (rejects no good part).
    candidates = np.unique(np.concatenate((values, [np.nextafter(good.max(), np.inf)])))
    good_sorted = np.sort(good)
    rejected = (len(good) - np.searchsorted(good_sorted, candidates, side="left")) / len(good)
    # Ascending candidates: the first that meets the target catches the most defects. The last one rejects
    # no good part, so there always is one.
    first = int(np.argmax(rejected <= max_false_reject_rate))
    return _at_threshold(values, positive, with_margin(values, float(candidates[first])))
