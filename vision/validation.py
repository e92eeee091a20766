"""Validation of a network being trained: its predictions on the cached validation images, the task's
metrics and calibrated thresholds, and the per-epoch metric that picks the best epoch.

Why a metric per epoch: the validation *loss* of a detector or a segmenter is a poor judge of the epoch to
keep (the box and focal terms fall long after mAP stops rising, or rise while it still improves), and with
``--crop`` it is measured on crops, not on the frames the served network sees. :class:`EpochMetric` runs the
served network on whole validation frames after every epoch, through the same decoding as serving, and
logs the task's headline metric as ``val_<name>`` (shown on the progress line, kept in the history); the
checkpoint and early stopping then keep the epoch with the best of it.

Imports TensorFlow (through Keras): only training imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import keras
import numpy as np

from schemas.vocabulary import Task
from vision.metrics import (
    ScoredBox,
    auroc,
    classification_metrics,
    detection_metrics,
    max_f1_threshold,
    segmentation_metrics,
)
from vision.outputs import GOOD_LABEL, Prediction
from vision.preprocess import PreprocessSpec, normalize
from vision.training_data import Prepared

logger = logging.getLogger(__name__)

# The metric each task's best epoch is chosen by: higher is better for all of them.
HEADLINE_METRIC = {
    Task.CLASSIFICATION: "accuracy",
    Task.DETECTION: "map50",
    Task.SEGMENTATION: "defect_iou",
    Task.ANOMALY: "image_auroc",
}
# Validation frames the per-epoch metric looks at: the final metrics use them all, but predicting a few
# hundred 640 px frames every epoch would cost as much CPU as the epoch itself.
EPOCH_METRIC_IMAGES = 64


def predict_pixels(
    model: keras.Model, pixels: np.ndarray, spec: PreprocessSpec, batch_size: int = 64
) -> np.ndarray:
    """The network's raw outputs for cached uint8 pixels (the second half of the serving preprocessing)."""
    outputs = [
        np.asarray(model(normalize(pixels[i : i + batch_size], spec), training=False))
        for i in range(0, len(pixels), batch_size)
    ]
    return np.concatenate(outputs)


def validation_metrics(
    task: Task, predictions: list[Prediction], data: Prepared, classes: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Metrics on the validation set and the thresholds calibrated there.

    ``thresholds["defect"]`` applies to :attr:`Prediction.defect_score` for every task. Classification keeps
    0.5 (the argmax boundary between good and the rest); the others take the max-F1 threshold of the
    image-level defect/good decision on the validation set.
    """
    is_defect = [label != GOOD_LABEL for label in data.labels]
    scores = [p.defect_score for p in predictions]
    metrics: dict[str, Any] = {"validation_images": len(predictions)}
    thresholds: dict[str, float] = {}
    if any(is_defect) and not all(is_defect):
        metrics["image_auroc"] = auroc(scores, is_defect)
        if task is not Task.CLASSIFICATION:
            calibrated = max_f1_threshold(scores, is_defect)
            thresholds["defect"] = calibrated.threshold
            metrics["image_f1"] = calibrated.f1
            metrics["image_precision"] = calibrated.precision
            metrics["image_recall"] = calibrated.recall
    if task is Task.CLASSIFICATION:
        truth = [classes.index(label) for label in data.labels]
        guessed = [int(np.argmax([p.class_scores[c] for c in classes])) for p in predictions]
        metrics.update(classification_metrics(truth, guessed, classes))
    elif task is Task.DETECTION:
        boxes = [
            [
                ScoredBox(d.label, d.score, d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max)
                for d in p.detections
            ]
            for p in predictions
        ]
        metrics.update(detection_metrics(list(data.boxes), boxes, classes))
    elif task is Task.SEGMENTATION:
        assert data.masks is not None
        masks = [p.mask if p.mask is not None else np.zeros_like(data.masks[0]) for p in predictions]
        metrics.update(segmentation_metrics(masks, list(data.masks), classes))
    return metrics, thresholds


def epoch_metric_sample(data: Prepared, limit: int = EPOCH_METRIC_IMAGES, seed: int = 0) -> Prepared:
    """At most ``limit`` validation frames, drawn without replacement (seeded) and kept in their order;
    good and defect frames in their shares, so an AUROC or an image threshold stays defined."""
    count = len(data.labels)
    if count <= limit:
        return data
    rng = np.random.default_rng(seed)
    labels = np.array([label != GOOD_LABEL for label in data.labels])
    chosen: list[int] = []
    for group in (np.flatnonzero(labels), np.flatnonzero(~labels)):
        share = max(1, round(limit * len(group) / count)) if len(group) else 0
        chosen += rng.choice(group, size=min(share, len(group)), replace=False).tolist()
    picked = np.sort(np.array(chosen, dtype=np.int64))
    return replace(
        data,
        pixels=data.pixels[picked],
        labels=tuple(data.labels[i] for i in picked),
        boxes=tuple(data.boxes[i] for i in picked),
        masks=data.masks[picked] if data.masks is not None else None,
        frame_stats=data.frame_stats[picked] if data.frame_stats is not None else None,
    )


def epoch_metric_name(task: Task, data: Prepared) -> str | None:
    """The ``val_`` metric the best epoch is chosen by, or None where the validation frames cannot give it
    (an anomaly or image-level metric needs good and defect frames; a mask IoU needs masks)."""
    if not data.labels:
        return None
    if task is Task.ANOMALY and {label != GOOD_LABEL for label in data.labels} != {True, False}:
        return None
    if task is Task.SEGMENTATION and data.masks is None:
        return None
    return f"val_{HEADLINE_METRIC[task]}"


class EpochMetric(keras.callbacks.Callback):
    """Puts ``measure()`` into the epoch's logs as ``name`` at the epoch's end.

    It must come after :class:`~vision.fit_setup.EmaWeights` (which holds the averaged weights from the
    validation on) and before the checkpoint and early stopping, which read the logs it wrote: Keras hands
    every callback the same logs dictionary, in the order of the list."""

    def __init__(self, name: str, measure: Callable[[], float]) -> None:
        super().__init__()
        self.name = name
        self.measure = measure

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float(self.measure())
        if logs is not None:
            logs[self.name] = value
