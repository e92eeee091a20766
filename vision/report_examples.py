"""The examples of an evaluation report: the images a model gets most wrong, drawn with what it saw.

A metric says *how often* a model fails; an engineer fixes it by seeing *why*. So the report picks, at the
model's own decision threshold (``model.json``, the one the worker applies):

- **false rejects**: good parts scored as defective, highest score first (they cost scrap);
- **escapes**: defective parts scored as good, lowest score first (they reach the customer);
- per task, the worst of the rest: a classifier's confident wrong class, a detector's images with the most
  missed and false boxes, a segmenter's (or anomaly map's) defect images with the lowest mask IoU.

Each picture shows the truth in green (boxes, mask outlines) and the prediction in red (boxes with class and
score, a translucent mask), under a caption that says why it was picked. Picking is pure logic over the
predictions (:func:`pick_examples`); only :func:`render_example` touches pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from schemas.vocabulary import Task
from vision.artifact import ModelMetadata
from vision.metrics import ScoredBox, mask_iou, match_greedily
from vision.outputs import GOOD_LABEL, Prediction
from vision.preprocess import resize_mask
from vision.samples import Sample

TRUTH = (60, 180, 60)  # BGR green
PREDICTED = (40, 40, 220)  # BGR red
EXAMPLE_WIDTH = 480  # px: wide enough to see a pit, small enough for a page of them
MATCH_IOU = 0.5  # a predicted box finds a true one of its class at this IoU (as mAP@0.5 counts)
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Example:
    """One picked image: which sample, what kind of failure, and the caption that says why."""

    index: int
    kind: str
    reason: str


def decision_threshold(metadata: ModelMetadata) -> float:
    """The threshold the worker applies to ``defect_score`` (the model's own), else 0.5."""
    return float(metadata.thresholds.get("defect", DEFAULT_THRESHOLD))


def pick_examples(
    task: Task,
    samples: Sequence[Sample],
    predictions: Sequence[Prediction],
    threshold: float,
    count: int,
) -> list[Example]:
    """Up to ``count`` examples: false rejects and escapes first (alternating, worst first), then the task's
    own worst cases, each image at most once."""
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    rejects, escapes = (
        _false_rejects(samples, predictions, threshold),
        _escapes(samples, predictions, threshold),
    )
    interleaved = [example for pair in _zip_longest(rejects, escapes) for example in pair if example]
    picked: list[Example] = []
    seen: set[int] = set()
    for example in interleaved + _task_worst(task, samples, predictions, threshold):
        if len(picked) == count:
            break
        if example.index not in seen:
            seen.add(example.index)
            picked.append(example)
    return picked


def _zip_longest(a: list[Example], b: list[Example]) -> list[tuple[Example | None, Example | None]]:
    length = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(length)]


def _false_rejects(
    samples: Sequence[Sample], predictions: Sequence[Prediction], threshold: float
) -> list[Example]:
    found = [
        (p.defect_score, i)
        for i, (s, p) in enumerate(zip(samples, predictions, strict=True))
        if s.label == GOOD_LABEL and p.defect_score >= threshold
    ]
    return [
        Example(i, "false reject", f"good part scored {score:.3f} >= threshold {threshold:.3f}")
        for score, i in sorted(found, key=lambda pair: (-pair[0], pair[1]))
    ]


def _escapes(samples: Sequence[Sample], predictions: Sequence[Prediction], threshold: float) -> list[Example]:
    found = [
        (p.defect_score, i)
        for i, (s, p) in enumerate(zip(samples, predictions, strict=True))
        if s.label != GOOD_LABEL and p.defect_score < threshold
    ]
    return [
        Example(i, "escape", f"{samples[i].label} part scored {score:.3f} < threshold {threshold:.3f}")
        for score, i in sorted(found)
    ]


def _task_worst(
    task: Task, samples: Sequence[Sample], predictions: Sequence[Prediction], threshold: float
) -> list[Example]:
    if task is Task.CLASSIFICATION:
        return _wrong_classes(samples, predictions)
    if task is Task.DETECTION:
        return _box_errors(samples, predictions, threshold)
    return _worst_masks(samples, predictions)


def _wrong_classes(samples: Sequence[Sample], predictions: Sequence[Prediction]) -> list[Example]:
    found = []
    for i, (sample, prediction) in enumerate(zip(samples, predictions, strict=True)):
        if not prediction.class_scores:
            continue
        guess = max(prediction.class_scores, key=lambda name: prediction.class_scores[name])
        if guess != sample.label:
            found.append((prediction.class_scores[guess], i, guess))
    return [
        Example(i, "wrong class", f"{samples[i].label} taken for {guess} ({score:.3f})")
        for score, i, guess in sorted(found, key=lambda row: (-row[0], row[1]))
    ]


def box_errors(sample: Sample, prediction: Prediction, threshold: float) -> tuple[int, int]:
    """(missed true boxes, false predicted boxes) of one image, for predicted boxes scoring >= ``threshold``,
    matched per class as mAP@0.5 matches them (:func:`vision.metrics.match_greedily`)."""
    shown = [
        ScoredBox(d.label, d.score, d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max)
        for d in prediction.detections
        if d.score >= threshold
    ]
    hits = 0
    for label in {box.label for box in shown}:
        own = sorted((box for box in shown if box.label == label), key=lambda box: -box.score)
        truth = [box for box in sample.boxes if box.label == label]
        hits += int(match_greedily(truth, own, MATCH_IOU).sum())
    return len(sample.boxes) - hits, len(shown) - hits


def _box_errors(
    samples: Sequence[Sample], predictions: Sequence[Prediction], threshold: float
) -> list[Example]:
    found = []
    for i, (sample, prediction) in enumerate(zip(samples, predictions, strict=True)):
        missed, false = box_errors(sample, prediction, threshold)
        if missed or false:
            found.append((missed + false, missed, false, i))
    return [
        Example(
            i, "box errors", f"{missed} of {len(samples[i].boxes)} true boxes missed, {false} false boxes"
        )
        for _, missed, false, i in sorted(found, key=lambda row: (-row[0], row[3]))
    ]


def _worst_masks(samples: Sequence[Sample], predictions: Sequence[Prediction]) -> list[Example]:
    found = []
    for i, (sample, prediction) in enumerate(zip(samples, predictions, strict=True)):
        if sample.load_mask is None or prediction.mask is None or sample.label == GOOD_LABEL:
            continue
        truth = sample.load_mask()
        predicted = resize_mask(prediction.mask, truth.shape[1], truth.shape[0])
        found.append((mask_iou(predicted > 0, truth > 0), i))
    return [Example(i, "worst mask", f"{samples[i].label}: defect IoU {iou:.3f}") for iou, i in sorted(found)]


def render_example(
    sample: Sample, prediction: Prediction, example: Example, threshold: float, width: int = EXAMPLE_WIDTH
) -> np.ndarray:
    """The sample's image at ``width`` px with truth (green) and prediction (red) drawn, under a caption."""
    image = sample.load_image()
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = width / image.shape[1]
    height = max(1, round(image.shape[0] * scale))
    # Nearest for enlarging keeps a pit a crisp square instead of a blur.
    interpolation = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
    canvas = cv2.resize(image, (width, height), interpolation=interpolation)
    if prediction.mask is not None:
        predicted = resize_mask(prediction.mask, width, height) > 0
        tinted = canvas.copy()
        tinted[predicted] = PREDICTED
        canvas = cv2.addWeighted(tinted, 0.4, canvas, 0.6, 0)
    if sample.load_mask is not None:
        truth = (resize_mask(sample.load_mask(), width, height) > 0).astype(np.uint8)
        contours, _ = cv2.findContours(truth, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, TRUTH, 1, cv2.LINE_AA)
    for box in sample.boxes:
        _draw_box(canvas, (box.x_min, box.y_min, box.x_max, box.y_max), TRUTH, box.label)
    for detection in prediction.detections:
        if detection.score >= threshold:
            b = detection.box
            label = f"{detection.label} {detection.score:.2f}"
            _draw_box(canvas, (b.x_min, b.y_min, b.x_max, b.y_max), PREDICTED, label)
    caption = np.full((44, width, 3), 255, dtype=np.uint8)
    cv2.putText(
        caption, f"{example.kind}: {sample.key}"[:70], (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
    )
    cv2.putText(caption, example.reason[:70], (6, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return np.vstack([caption, canvas])


def _draw_box(
    canvas: np.ndarray, box: tuple[float, float, float, float], colour: tuple[int, int, int], label: str
) -> None:
    height, width = canvas.shape[:2]
    x0, y0 = round(box[0] * width), round(box[1] * height)
    x1, y1 = round(box[2] * width), round(box[3] * height)
    cv2.rectangle(canvas, (x0, y0), (max(x0 + 1, x1), max(y0 + 1, y1)), colour, 1)
    cv2.putText(canvas, label, (x0, max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)


def write_examples(
    out_dir: Path,
    metadata: ModelMetadata,
    samples: Sequence[Sample],
    predictions: Sequence[Prediction],
    count: int,
) -> tuple[list[Path], list[str]]:
    """Pick and draw up to ``count`` examples into ``out_dir/examples/``; return the files and the report's
    markdown section (which says so when the model got nothing wrong)."""
    threshold = decision_threshold(metadata)
    picked = pick_examples(metadata.task, samples, predictions, threshold, count)
    lines = [
        "## Examples",
        "",
        f"At the model's decision threshold {threshold:.3f}; truth green, prediction red.",
        "",
    ]
    if not picked:
        return [], [*lines, "No false rejects, escapes or task errors to show.", ""]
    folder = out_dir / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for rank, example in enumerate(picked, start=1):
        image = render_example(samples[example.index], predictions[example.index], example, threshold)
        path = folder / f"{rank:02d}-{example.kind.replace(' ', '-')}.png"
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}")
        files.append(path)
        lines += [f"{rank}. **{example.kind}** `{samples[example.index].key}`: {example.reason}", "",
                  f"   ![{example.kind}](examples/{path.name})", ""]  # fmt: skip
    return files, lines
