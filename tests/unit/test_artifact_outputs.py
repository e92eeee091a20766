"""Decoding raw model outputs into predictions, on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.vocabulary import Task
from vision.artifact import ModelMetadata
from vision.outputs import decode_outputs
from vision.preprocess import PreprocessSpec


def _metadata(task: Task, classes: tuple[str, ...], **extra: object) -> ModelMetadata:
    fields = {
        "name": "m",
        "version": "1",
        "task": task,
        "classes": classes,
        "preprocess": PreprocessSpec.for_input(32, 32),
        **extra,
    }
    return ModelMetadata.model_validate(fields)


def test_classification_scores_and_defect_score() -> None:
    meta = _metadata(Task.CLASSIFICATION, ("good", "scratch", "spot"))
    raw = np.array([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9]], dtype=np.float32)
    first, second = decode_outputs(raw, meta)
    assert first.class_scores == pytest.approx({"good": 0.7, "scratch": 0.2, "spot": 0.1})
    assert first.defect_score == pytest.approx(0.3)
    assert second.defect_score == pytest.approx(0.95)
    assert first.detections == () and first.mask is None and first.anomaly_score is None


def test_detection_peaks_become_boxes() -> None:
    classes = ("scratch", "spot")
    meta = _metadata(Task.DETECTION, classes, decoding={"stride": 4, "min_score": 0.3})
    grid = np.zeros((1, 8, 8, 6), dtype=np.float32)
    # A spot centred in cell (row 2, col 5) at offset (0.5, 0.5), 25% x 12.5% of the image.
    grid[0, 2, 5, 1] = 0.9
    grid[0, 2, 4, 1] = 0.6  # a neighbour of the peak: not a peak itself
    grid[0, 2, 5, 2:4] = 0.5
    grid[0, 2, 5, 4:6] = (0.25, 0.125)
    # A weak scratch below min_score: counted in class_scores, not as a box.
    grid[0, 6, 1, 0] = 0.2
    (prediction,) = decode_outputs(grid, meta)
    assert len(prediction.detections) == 1
    spot = prediction.detections[0]
    assert spot.label == "spot" and spot.score == pytest.approx(0.9)
    cx, cy = 5.5 / 8, 2.5 / 8
    assert (spot.box.x_min, spot.box.y_min, spot.box.x_max, spot.box.y_max) == pytest.approx(
        (cx - 0.125, cy - 0.0625, cx + 0.125, cy + 0.0625)
    )
    assert prediction.class_scores == pytest.approx({"scratch": 0.2, "spot": 0.9})
    assert prediction.defect_score == pytest.approx(0.9)


def test_detection_suppresses_duplicate_boxes_of_the_same_class() -> None:
    meta = _metadata(Task.DETECTION, ("scratch",), decoding={"min_score": 0.1})
    grid = np.zeros((1, 8, 8, 5), dtype=np.float32)
    # Two separate peaks along one long scratch describing (nearly) the same box.
    grid[0, 4, 2, 0], grid[0, 4, 5, 0] = 0.8, 0.7
    grid[0, 4, 2, 1:3] = (0.9, 0.5)
    grid[0, 4, 5, 1:3] = (0.1, 0.5)
    grid[0, 4, 2, 3:5] = grid[0, 4, 5, 3:5] = (0.8, 0.1)
    (prediction,) = decode_outputs(grid, meta)
    assert [d.score for d in prediction.detections] == pytest.approx([0.8])


def test_segmentation_mask_components_and_scores() -> None:
    meta = _metadata(Task.SEGMENTATION, ("crack", "stain"))
    probs = np.zeros((1, 10, 20, 3), dtype=np.float32)
    probs[..., 0] = 1.0
    probs[0, 2:5, 3:9] = (0.1, 0.85, 0.05)  # a crack, 3x6 px
    probs[0, 7, 15] = (0.4, 0.05, 0.55)  # a 1-pixel stain: below min_area (4)
    (prediction,) = decode_outputs(probs, meta)
    assert prediction.mask is not None and prediction.mask.dtype == np.uint8
    assert int((prediction.mask == 1).sum()) == 18 and int((prediction.mask == 2).sum()) == 1
    (crack,) = prediction.detections
    assert crack.label == "crack" and crack.score == pytest.approx(0.85)
    assert (crack.box.x_min, crack.box.y_min, crack.box.x_max, crack.box.y_max) == pytest.approx(
        (3 / 20, 2 / 10, 9 / 20, 5 / 10)
    )
    assert prediction.class_scores == pytest.approx({"crack": 0.85, "stain": 0.55})


def test_anomaly_score_is_the_map_maximum_and_mask_uses_the_pixel_threshold() -> None:
    amap = np.zeros((2, 4, 4, 1), dtype=np.float32)
    amap[0, 1, 2, 0] = 0.8
    amap[1] = 0.1
    plain = decode_outputs(amap, _metadata(Task.ANOMALY, ("good", "defect")))
    assert [p.anomaly_score for p in plain] == pytest.approx([0.8, 0.1])
    assert plain[0].mask is None
    masked = decode_outputs(amap, _metadata(Task.ANOMALY, ("good", "defect"), thresholds={"pixel": 0.5}))
    assert masked[0].mask is not None and int(masked[0].mask.sum()) == 1


def test_wrong_output_shape_is_explained() -> None:
    with pytest.raises(ValueError, match="should output 2-D arrays with 3 channels"):
        decode_outputs(np.zeros((1, 4)), _metadata(Task.CLASSIFICATION, ("good", "a", "b")))
