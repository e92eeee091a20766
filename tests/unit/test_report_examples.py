"""The evaluation report's examples: which images are picked (hand-computed orders), what is drawn on them,
and that a letterboxed model's boxes are scored on the image, as the worker serves them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from schemas.vocabulary import Task
from vision.artifact import ArtifactFiles, ModelMetadata
from vision.evaluation import predict_dataset
from vision.metrics import mask_iou
from vision.outputs import POINTS_HEAD, Prediction, found_defect
from vision.preprocess import PreprocessSpec
from vision.report_examples import (
    PREDICTED,
    TRUTH,
    Example,
    box_errors,
    pick_examples,
    render_example,
    write_examples,
)
from vision.samples import BoxLabel, Sample


def sample(key: str, label: str, boxes: tuple[BoxLabel, ...] = (), mask: np.ndarray | None = None) -> Sample:
    image = np.full((40, 80), 128, np.uint8)
    return Sample(key, lambda: image, label, boxes, None if mask is None else (lambda: mask))


def scored(defect: float, detections: tuple = (), mask: np.ndarray | None = None) -> Prediction:
    return Prediction(
        class_scores={}, detections=detections, anomaly_score=None, mask=mask, defect_score=defect
    )


def metadata(task: Task, thresholds: dict[str, float] | None = None, **preprocess: object) -> ModelMetadata:
    spec = dataclasses.replace(PreprocessSpec.for_input(8, 8, channels=1), **preprocess)  # type: ignore[arg-type]
    return ModelMetadata(
        name="probe",
        version="1",
        task=task,
        classes=("scratch",),
        preprocess=spec,
        files=ArtifactFiles(keras=None),
        thresholds=thresholds or {},
    )


def test_false_rejects_and_escapes_come_first_worst_first_alternating() -> None:
    samples = [sample(f"s{i}", label) for i, label in enumerate(["good"] * 3 + ["dent"] * 3)]
    predictions = [scored(s) for s in (0.9, 0.2, 0.7, 0.1, 0.6, 0.3)]

    picked = pick_examples(Task.ANOMALY, samples, predictions, threshold=0.5, count=3)

    # False rejects by falling score (0: 0.9, 2: 0.7), escapes by rising score (3: 0.1, 5: 0.3), alternating.
    assert [(e.index, e.kind) for e in picked] == [(0, "false reject"), (3, "escape"), (2, "false reject")]
    assert picked[0].reason == "good part scored 0.900 >= threshold 0.500"
    assert picked[1].reason == "dent part scored 0.100 < threshold 0.500"
    everything = pick_examples(Task.ANOMALY, samples, predictions, threshold=0.5, count=10)
    assert [e.index for e in everything] == [0, 3, 2, 5]  # 1 and 4 are right: never shown


def test_box_errors_count_missed_and_false_boxes_by_class_and_iou() -> None:
    truth = (BoxLabel("scratch", 0.1, 0.1, 0.3, 0.3), BoxLabel("pit", 0.6, 0.6, 0.8, 0.8))
    detections = (
        found_defect("scratch", 0.9, 0.1, 0.1, 0.3, 0.32),  # IoU 0.91 with the scratch: found
        found_defect("scratch", 0.8, 0.6, 0.6, 0.8, 0.8),  # right place, wrong class: false
        found_defect("pit", 0.2, 0.6, 0.6, 0.8, 0.8),  # would match, but below the threshold: not shown
    )

    assert box_errors(sample("a", "defect", truth), scored(0.9, detections), threshold=0.5) == (1, 1)
    assert box_errors(sample("a", "defect", truth), scored(0.9, detections), threshold=0.1) == (0, 1)


def test_detection_examples_rank_images_by_their_box_errors() -> None:
    truth = (BoxLabel("scratch", 0.1, 0.1, 0.3, 0.3),)
    hit = found_defect("scratch", 0.9, 0.1, 0.1, 0.3, 0.3)
    stray = found_defect("scratch", 0.9, 0.6, 0.6, 0.9, 0.9)
    samples = [sample("ok", "defect", truth), sample("one", "defect", truth), sample("two", "defect", truth)]
    predictions = [scored(0.9, (hit,)), scored(0.9, (hit, stray)), scored(0.9, (stray,))]

    picked = pick_examples(Task.DETECTION, samples, predictions, threshold=0.5, count=5)

    assert [(e.index, e.kind) for e in picked] == [(2, "box errors"), (1, "box errors")]
    assert picked[0].reason == "1 of 1 true boxes missed, 1 false boxes"


def test_mask_examples_rank_defect_images_by_iou() -> None:
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :2] = 1  # 4 pixels
    half = np.zeros((4, 4), np.uint8)
    half[:2, :1] = 1  # 2 of them: IoU 0.5
    samples = [
        sample("exact", "pit", mask=truth),
        sample("half", "pit", mask=truth),
        sample("g", "good", mask=0 * truth),
    ]
    predictions = [scored(0.9, mask=truth), scored(0.9, mask=half), scored(0.1, mask=0 * truth)]

    assert mask_iou(truth, half) == 0.5
    assert mask_iou(0 * truth, 0 * truth) == 1.0
    picked = pick_examples(Task.SEGMENTATION, samples, predictions, threshold=0.5, count=5)
    assert [(e.index, e.reason) for e in picked] == [
        (1, "pit: defect IoU 0.500"),
        (0, "pit: defect IoU 1.000"),
    ]


def test_rendered_example_draws_truth_green_and_prediction_red_under_a_caption() -> None:
    truth = (BoxLabel("scratch", 0.25, 0.25, 0.5, 0.5),)
    detections = (found_defect("scratch", 0.9, 0.5, 0.5, 0.75, 0.75),)
    item = sample("frame-7", "scratch", truth)

    image = render_example(item, scored(0.9, detections), Example(0, "box errors", "why"), 0.5, width=160)

    # 80x40 image at width 160 -> 160x80, under a 44 px caption.
    assert image.shape == (44 + 80, 160, 3)
    body = image[44:]
    assert tuple(body[20, 60]) == TRUTH  # the true box's top edge (y 0.25*80, x within 40..80)
    assert tuple(body[60, 100]) == PREDICTED  # the predicted box's bottom edge (y 0.75*80)
    assert (image[:44] < 255).any()  # the caption has text


def test_write_examples_writes_pictures_and_the_report_section(tmp_path: Path) -> None:
    samples = [sample("good-1", "good"), sample("dent-1", "dent")]
    predictions = [scored(0.8), scored(0.2)]

    files, lines = write_examples(tmp_path, metadata(Task.ANOMALY, {"defect": 0.5}), samples, predictions, 8)

    assert [f.name for f in files] == ["01-false-reject.png", "02-escape.png"]
    assert all(f.stat().st_size > 0 for f in files)
    text = "\n".join(lines)
    assert "**false reject** `good-1`" in text and "](examples/02-escape.png)" in text
    none, quiet = write_examples(
        tmp_path / "q", metadata(Task.ANOMALY, {"defect": 0.5}), samples, [scored(0.1), scored(0.9)], 8
    )
    assert none == [] and "No false rejects, escapes or task errors to show." in quiet


def test_evaluation_maps_a_letterboxed_models_boxes_back_onto_the_image() -> None:
    meta = metadata(Task.DETECTION, resize="letterbox").model_copy(update={"decoding": {"head": POINTS_HEAD}})
    wide = Sample(
        "wide", lambda: np.zeros((8, 16), np.uint8), "scratch"
    )  # 16x8 -> content 8x4, 2 px pad above

    def model(batch: np.ndarray) -> np.ndarray:
        # One point: class score 0.9, box (0.25, 0.25)-(0.75, 0.75) of the padded 8x8 input.
        return np.array([[[0.9, 0.25, 0.25, 0.75, 0.75]]] * len(batch), np.float32)

    (prediction,) = predict_dataset(model, meta, [wide])

    box = prediction.detections[0].box
    # y: (0.25 * 8 - 2) / 4 = 0 and (0.75 * 8 - 2) / 4 = 1; x keeps 0.25..0.75 (no pad sideways).
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx((0.25, 0.0, 0.75, 1.0))
