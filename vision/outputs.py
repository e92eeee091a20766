"""Raw model outputs -> per-image predictions, one decoder per task, shared by evaluation and workers.

Every lineguard network has one output tensor, so Keras, TensorFlow and ONNX Runtime backends hand the same
array to :func:`decode_outputs`. Layouts (N = batch):

- classify: ``(N, C)`` class probabilities (softmax inside the model), in ``metadata.classes`` order.
- detect: ``(N, Gh, Gw, K + 4)`` on a grid of ``decoding["stride"]`` pixels (CenterNet): K centre heat-maps
  (sigmoid), then the centre's offset inside its cell (x, y in [0, 1]) and the box size (w, h as fractions of
  the image). Peaks of the heat-maps (3x3 local maxima above ``decoding["min_score"]``) become boxes.
- segment: ``(N, H, W, K + 1)`` per-pixel probabilities (softmax), background first; mask value k is
  ``classes[k - 1]``, as in the datasets.
- anomaly: ``(N, H, W, 1)`` anomaly map (the model computes its own smoothed reconstruction error); the
  image's anomaly score is the map's maximum.

Pure NumPy + OpenCV, no TensorFlow. Verdicts are not decided here: workers compare ``defect_score`` (or the
parts they need) with thresholds that can change per line or camera without touching the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from schemas.records import Box, Detection
from schemas.vocabulary import Task
from vision.artifact import ModelMetadata
from vision.letterbox import input_to_image, letterbox_for
from vision.preprocess import PreprocessSpec

GOOD_LABEL = "good"
# ``decoding["head"]`` of the multi-scale detector (vision.nets.fcos): ``(N, P, K + 4)`` per point, K class
# probabilities then the box (x_min, y_min, x_max, y_max, fractions of the input), decoded in the graph.
POINTS_HEAD = "points"

DEFAULT_DECODING: dict[Task, dict[str, float | int | str]] = {
    Task.CLASSIFICATION: {},
    Task.DETECTION: {"stride": 4, "min_score": 0.05, "max_detections": 50, "nms_iou": 0.5},
    Task.SEGMENTATION: {"min_area": 4, "max_detections": 50},
    Task.ANOMALY: {},
}


def found_defect(
    label: str, score: float, x_min: float, y_min: float, x_max: float, y_max: float
) -> Detection:
    """A found defect as the contract's :class:`~schemas.result.Detection`: class, confidence and a box
    normalized to [0, 1] of the image, the box labelled with the same class.

    The score is clipped to [0, 1], as the wire needs (an imported model's head may overshoot; NaN -> 0)."""
    box = Box(label=label, x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max)
    return Detection(label=label, score=min(1.0, max(0.0, score)), box=box)


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a model says about one image.

    ``defect_score`` is the task's single "how defective" number in [0, 1] for the model tasks with
    probabilities (classify: 1 - P(good); detect: best box score; segment: best class score) and the raw
    anomaly score for anomaly models; workers and evaluation compare it with the decision threshold.
    ``mask`` is uint8 at the model's input resolution (segment: class ids; anomaly: 0/1 where the map exceeds
    the ``pixel`` threshold, when the model has one), else None.
    """

    class_scores: dict[str, float]
    detections: tuple[Detection, ...]
    anomaly_score: float | None
    mask: np.ndarray | None
    defect_score: float


def decode_outputs(raw: np.ndarray, metadata: ModelMetadata) -> list[Prediction]:
    """Decode a batch of raw outputs of the model described by ``metadata``."""
    raw = np.asarray(raw, dtype=np.float32)
    decoding = {**DEFAULT_DECODING[metadata.task], **metadata.decoding}
    if metadata.task is Task.CLASSIFICATION:
        return [_decode_classification(row, metadata.classes) for row in _expect(raw, 2, metadata)]
    if metadata.task is Task.DETECTION and decoding.get("head") == POINTS_HEAD:
        return [_decode_points(rows, metadata.classes, decoding) for rows in _expect(raw, 3, metadata)]
    if metadata.task is Task.DETECTION:
        return [_decode_detection(grid, metadata.classes, decoding) for grid in _expect(raw, 4, metadata)]
    if metadata.task is Task.SEGMENTATION:
        return [
            _decode_segmentation(probs, metadata.classes, decoding) for probs in _expect(raw, 4, metadata)
        ]
    pixel_threshold = metadata.thresholds.get("pixel")
    return [_decode_anomaly(amap, pixel_threshold) for amap in _expect(raw, 4, metadata)]


def _expect(raw: np.ndarray, ndim: int, metadata: ModelMetadata) -> np.ndarray:
    channels = {
        Task.CLASSIFICATION: len(metadata.classes),
        Task.DETECTION: len(metadata.classes) + 4,
        Task.SEGMENTATION: len(metadata.classes) + 1,
        Task.ANOMALY: 1,
    }[metadata.task]
    if raw.ndim != ndim or raw.shape[-1] != channels:
        raise ValueError(
            f"{metadata.task.value} model {metadata.name} should output {ndim}-D arrays with {channels} "
            f"channels, got shape {raw.shape}"
        )
    return raw


def _decode_classification(probabilities: np.ndarray, classes: tuple[str, ...]) -> Prediction:
    scores = {name: float(p) for name, p in zip(classes, probabilities, strict=True)}
    # With a "good" class, anything that is not good counts; otherwise the most likely defect does.
    defect_score = 1.0 - scores[GOOD_LABEL] if GOOD_LABEL in scores else max(scores.values())
    return Prediction(
        class_scores=scores,
        detections=(),
        anomaly_score=None,
        mask=None,
        defect_score=float(np.clip(defect_score, 0.0, 1.0)),
    )


def _local_maxima(heat: np.ndarray) -> np.ndarray:
    """Boolean map of cells that are the maximum of their 3x3 neighbourhood (per channel)."""
    padded = np.pad(heat, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(0, 1))
    return heat >= windows.max(axis=(-2, -1))


def _decode_detection(
    grid: np.ndarray, classes: tuple[str, ...], decoding: dict[str, float | int | str]
) -> Prediction:
    k = len(classes)
    heat = grid[..., :k]
    offsets = grid[..., k : k + 2]
    sizes = grid[..., k + 2 : k + 4]
    grid_h, grid_w = heat.shape[:2]
    min_score = float(decoding["min_score"])
    peaks = _local_maxima(heat) & (heat >= min_score)
    rows, cols, class_ids = np.nonzero(peaks)
    scores = heat[rows, cols, class_ids]
    order = np.argsort(-scores, kind="stable")
    rows, cols, class_ids, scores = rows[order], cols[order], class_ids[order], scores[order]
    cx = (cols + offsets[rows, cols, 0]) / grid_w
    cy = (rows + offsets[rows, cols, 1]) / grid_h
    half_w, half_h = sizes[rows, cols, 0] / 2, sizes[rows, cols, 1] / 2
    boxes = np.clip(np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1), 0.0, 1.0)
    keep = _class_nms(boxes, class_ids, float(decoding["nms_iou"]), int(decoding["max_detections"]))
    detections = tuple(
        found_defect(classes[class_ids[i]], float(scores[i]), *(float(v) for v in boxes[i])) for i in keep
    )
    # A class's image-level score is its best peak, whether or not it cleared ``min_score``.
    class_best = heat.reshape(-1, k).max(axis=0) if heat.size else np.zeros(k, dtype=np.float32)
    class_scores = {name: float(s) for name, s in zip(classes, class_best, strict=True)}
    return Prediction(
        class_scores=class_scores,
        detections=detections,
        anomaly_score=None,
        mask=None,
        defect_score=float(class_best.max()) if k else 0.0,
    )


def _decode_points(
    rows: np.ndarray, classes: tuple[str, ...], decoding: dict[str, float | int | str]
) -> Prediction:
    """Multi-scale head: every (point, class) above ``min_score`` is a candidate box; per-class NMS keeps
    the best of the overlapping ones (neighbouring points and levels see the same defect)."""
    k = len(classes)
    scores_all = rows[:, :k]
    boxes_all = np.clip(rows[:, k : k + 4], 0.0, 1.0)
    points, class_ids = np.nonzero(scores_all >= float(decoding["min_score"]))
    scores = scores_all[points, class_ids]
    order = np.argsort(-scores, kind="stable")
    points, class_ids, scores = points[order], class_ids[order], scores[order]
    boxes = boxes_all[points]
    keep = _class_nms(boxes, class_ids, float(decoding["nms_iou"]), int(decoding["max_detections"]))
    detections = tuple(
        found_defect(classes[class_ids[i]], float(scores[i]), *(float(v) for v in boxes[i])) for i in keep
    )
    class_best = scores_all.max(axis=0) if len(scores_all) else np.zeros(k, dtype=np.float32)
    return Prediction(
        class_scores={name: float(s) for name, s in zip(classes, class_best, strict=True)},
        detections=detections,
        anomaly_score=None,
        mask=None,
        defect_score=float(class_best.max()) if k else 0.0,
    )


def _class_nms(boxes: np.ndarray, class_ids: np.ndarray, iou_limit: float, limit: int) -> list[int]:
    """Greedy per-class non-maximum suppression over boxes already sorted by descending score.

    Heat-map peaks rarely duplicate, but long thin defects (scratches, cracks) can raise two peaks along
    their length that describe the same box.
    """
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(boxes)):
        if len(keep) >= limit:
            break
        suppressed = False
        for j in keep:
            if class_ids[j] != class_ids[i]:
                continue
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(iw, 0.0) * max(ih, 0.0)
            union = areas[i] + areas[j] - inter
            if union > 0 and inter / union > iou_limit:
                suppressed = True
                break
        if not suppressed:
            keep.append(i)
    return keep


def _decode_segmentation(
    probabilities: np.ndarray, classes: tuple[str, ...], decoding: dict[str, float | int | str]
) -> Prediction:
    height, width = probabilities.shape[:2]
    mask = probabilities.argmax(axis=-1).astype(np.uint8)
    class_best = probabilities[..., 1:].reshape(-1, len(classes)).max(axis=0)
    class_scores = {name: float(s) for name, s in zip(classes, class_best, strict=True)}
    min_area = int(decoding["min_area"])
    found: list[Detection] = []
    for class_id, name in enumerate(classes, start=1):
        region = (mask == class_id).astype(np.uint8)
        if not region.any():
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        for component in range(1, count):
            x, y, w, h, area = stats[component]
            if area < min_area:
                continue
            score = float(probabilities[..., class_id][labels == component].max())
            found.append(found_defect(name, score, x / width, y / height, (x + w) / width, (y + h) / height))
    found.sort(key=lambda d: -d.score)
    return Prediction(
        class_scores=class_scores,
        detections=tuple(found[: int(decoding["max_detections"])]),
        anomaly_score=None,
        mask=mask,
        defect_score=float(class_best.max()) if len(classes) else 0.0,
    )


def _decode_anomaly(anomaly_map: np.ndarray, pixel_threshold: float | None) -> Prediction:
    amap = anomaly_map[..., 0]
    score = float(amap.max())
    mask = None if pixel_threshold is None else (amap >= pixel_threshold).astype(np.uint8)
    return Prediction(class_scores={}, detections=(), anomaly_score=score, mask=mask, defect_score=score)


def unletterbox(
    predictions: list[Prediction], image_sizes: Sequence[tuple[int, int]], spec: PreprocessSpec
) -> list[Prediction]:
    """Predictions of a letterboxed model (boxes normalized to the padded input, masks at input size) ->
    boxes normalized to each image and masks cropped to the image's part of the input.

    ``image_sizes`` are (width, height) of the images that were preprocessed; only their aspect ratio
    matters, so the reduced-scale decode's size serves as well as the frame's."""
    out: list[Prediction] = []
    for prediction, (width, height) in zip(predictions, image_sizes, strict=True):
        box = letterbox_for(width, height, spec.width, spec.height)
        detections = prediction.detections
        if detections:
            coords = np.array([[d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max] for d in detections])
            mapped = input_to_image(coords, box)
            detections = tuple(
                found_defect(d.label, d.score, *(float(v) for v in row))
                for d, row in zip(detections, mapped, strict=True)
            )
        mask = prediction.mask
        if mask is not None:
            mask = mask[
                box.pad_y : box.pad_y + box.content_height, box.pad_x : box.pad_x + box.content_width
            ].copy()
        out.append(dataclasses.replace(prediction, detections=detections, mask=mask))
    return out
