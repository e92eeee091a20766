"""The multi-scale (FCOS-style) detector: its decoder on hand-made outputs, its graph, targets and loss."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.vocabulary import Task
from vision.artifact import ModelMetadata
from vision.nets.assigner import level_points
from vision.outputs import POINTS_HEAD, decode_outputs
from vision.preprocess import PreprocessSpec


def _metadata(**decoding: object) -> ModelMetadata:
    return ModelMetadata.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": Task.DETECTION,
            "classes": ("scratch", "pit"),
            "preprocess": PreprocessSpec.for_input(64, 64),
            "decoding": {"head": POINTS_HEAD, "min_score": 0.3, **decoding},
        }
    )


def test_points_above_the_score_become_boxes_and_duplicates_are_suppressed() -> None:
    rows = np.zeros((1, 5, 6), np.float32)
    rows[0, 0] = [0.9, 0.0, 0.1, 0.1, 0.3, 0.3]  # scratch
    rows[0, 1] = [0.8, 0.0, 0.11, 0.1, 0.31, 0.3]  # the same scratch from a neighbour point: IoU ~0.9
    rows[0, 2] = [0.0, 0.6, 0.1, 0.1, 0.3, 0.3]  # a pit at the same place: another class, kept
    rows[0, 3] = [0.2, 0.0, 0.5, 0.5, 0.9, 0.9]  # below min_score
    rows[0, 4] = [0.0, 0.5, 0.7, 0.7, 1.2, 1.1]  # a pit reaching past the edge: clipped
    (prediction,) = decode_outputs(rows, _metadata())
    found = [
        (d.label, round(d.score, 3), d.box.x_min, d.box.x_max, d.box.y_max) for d in prediction.detections
    ]
    assert found == [
        ("scratch", 0.9, pytest.approx(0.1), pytest.approx(0.3), pytest.approx(0.3)),
        ("pit", 0.6, pytest.approx(0.1), pytest.approx(0.3), pytest.approx(0.3)),
        ("pit", 0.5, pytest.approx(0.7), 1.0, 1.0),
    ]
    assert prediction.class_scores == {"scratch": pytest.approx(0.9), "pit": pytest.approx(0.6)}
    assert prediction.defect_score == pytest.approx(0.9)


def test_points_layout_is_checked() -> None:
    with pytest.raises(ValueError, match="3-D arrays with 6 channels"):
        decode_outputs(np.zeros((1, 4, 4, 6), np.float32), _metadata())


def test_graph_decodes_boxes_around_each_point_and_the_loss_rewards_the_truth() -> None:
    from vision.nets.fcos import build_fcos_detector, fcos_loss, fcos_targets

    model = build_fcos_detector((64, 64, 1), num_classes=2, width=0.5)
    points = level_points(64, 64)
    assert model.output_shape == (None, len(points.xy), 6)
    raw = np.asarray(model(np.zeros((1, 64, 64, 1), np.float32), training=False))
    # Untrained: every class starts near the 1 % prior, so the focal loss starts small and stable.
    assert 0.005 < raw[..., :2].mean() < 0.02
    # Each box contains its own point (side distances are exp(...) > 0).
    centres = points.xy / 64
    boxes = raw[0, :, 2:]
    assert (boxes[:, 0] < centres[:, 0]).all() and (boxes[:, 2] > centres[:, 0]).all()

    target = fcos_targets(np.array([[0.0625, 0.0625, 0.3125, 0.3125]]), np.array([1]), 2, 64, 64)
    assert target[9, :2].tolist() == [0.0, 1.0]  # the stride-8 point (12, 12), as the assigner says
    np.testing.assert_allclose(target[9, 2:], [0.0625, 0.0625, 0.3125, 0.3125])
    loss = fcos_loss(2)
    truth = target[None]
    perfect = float(np.asarray(loss(truth, np.clip(truth, 1e-6, 1 - 1e-6))))
    wrong = truth.copy()
    wrong[..., :2] = 1.0 - truth[..., :2]
    wrong[..., 2:] = truth[..., 2:] + 0.2
    assert perfect < 1e-3 < float(np.asarray(loss(truth, np.clip(wrong, 1e-6, 1 - 1e-6))))
