"""Training targets: what the detector and classifier are asked to predict (NumPy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.vocabulary import Task
from vision.artifact import ModelMetadata
from vision.nets.targets import class_index, detection_targets
from vision.outputs import decode_outputs
from vision.preprocess import PreprocessSpec
from vision.samples import BoxLabel

CLASSES = ("scratch", "spot")


def test_detection_target_marks_the_centre_cell_with_offset_and_size() -> None:
    box = BoxLabel("spot", 0.50, 0.25, 0.70, 0.45)  # centre (0.6, 0.35) -> cell (col 9.6, row 5.6) on 16x16
    target = detection_targets([box], CLASSES, 16, 16)
    assert target.shape == (16, 16, len(CLASSES) + 5)
    assert target[5, 9, 1] == 1.0 and target[..., 1].sum() > 1.0  # a peak with a Gaussian around it
    assert not target[..., 0].any()  # no scratch
    np.testing.assert_allclose(target[5, 9, 2:4], (0.6, 0.6), atol=1e-5)
    np.testing.assert_allclose(target[5, 9, 4:6], (0.2, 0.2), atol=1e-6)
    assert target[..., 6].sum() == 1.0 and target[5, 9, 6] == 1.0


def test_decoding_a_perfect_target_gives_back_the_box() -> None:
    boxes = [BoxLabel("scratch", 0.1, 0.1, 0.3, 0.8), BoxLabel("spot", 0.6, 0.6, 0.7, 0.72)]
    raw = detection_targets(boxes, CLASSES, 32, 32)[None, ..., : len(CLASSES) + 4]
    metadata = ModelMetadata(
        name="t",
        version="1",
        task=Task.DETECTION,
        classes=CLASSES,
        preprocess=PreprocessSpec.for_input(128, 128),
    )
    (prediction,) = decode_outputs(raw, metadata)
    found = {d.label: d for d in prediction.detections if d.score == 1.0}
    for box in boxes:
        hit = found[box.label].box
        assert (hit.x_min, hit.y_min, hit.x_max, hit.y_max) == pytest.approx(
            (box.x_min, box.y_min, box.x_max, box.y_max), abs=1e-5
        )


def test_elongated_boxes_get_elongated_gaussians() -> None:
    target = detection_targets([BoxLabel("scratch", 0.05, 0.45, 0.95, 0.55)], CLASSES, 32, 32)
    heat = target[..., 0]
    row, col = np.unravel_index(np.argmax(heat), heat.shape)
    assert heat[row, col + 4] > heat[row + 4, col]


def test_unknown_labels_are_skipped_in_targets_and_explained_for_images() -> None:
    target = detection_targets([BoxLabel("dent", 0.1, 0.1, 0.2, 0.2)], CLASSES, 8, 8)
    assert not target.any()
    assert class_index("spot", CLASSES) == 1
    with pytest.raises(ValueError, match="not one of the model's classes"):
        class_index("dent", CLASSES)
