"""What ``lineguard dataset export`` selects and which label each frame gets: the filter (line, model,
version, capture time; its MongoDB query), corrections, and the decision (a person's correction, then the
frame's ground truth, then the model's result), the newest result per frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.records import Frame, InspectionResult, Verdict
from vision.samples import BoxLabel

GOOD = "good"
DEFECT = "defect"
Identity = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which results to export (None = any)."""

    line: str | None = None
    model: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_uncertain: bool = False
    min_box_score: float = 0.5  # model detections below this are not written as boxes

    def accepts(self, result: InspectionResult) -> bool:
        return (
            (self.line is None or result.line_id == self.line)
            and (self.model is None or result.model.name == self.model)
            and (self.model_version is None or result.model.version == self.model_version)
            and (self.since is None or result.captured_at >= self.since)
            and (self.until is None or result.captured_at < self.until)
        )

    def mongo_query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.line is not None:
            query["line_id"] = self.line
        if self.model is not None:
            query["model.name"] = self.model
        if self.model_version is not None:
            query["model.version"] = self.model_version
        captured: dict[str, datetime] = {}
        if self.since is not None:
            captured["$gte"] = self.since
        if self.until is not None:
            captured["$lt"] = self.until
        if captured:
            query["captured_at"] = captured
        return query


@dataclass(frozen=True, slots=True)
class Correction:
    """A person's label for a frame; ``boxes`` (normalized) when they drew them, else None."""

    label: str
    boxes: tuple[BoxLabel, ...] | None = None


@dataclass(frozen=True, slots=True)
class Labelled:
    """How a frame is written: its image label, its boxes and where they came from."""

    label: str
    boxes: tuple[BoxLabel, ...]
    source: str  # correction | ground_truth | model


def label_from_result(result: InspectionResult, include_uncertain: bool = False) -> str | None:
    """The training label a result implies, or None when it should not be trusted."""
    if result.verdict is Verdict.OK:
        return GOOD
    if result.verdict is Verdict.UNCERTAIN:
        return "uncertain" if include_uncertain else None
    if result.verdict is not Verdict.DEFECT:
        return None
    if result.detections:
        return max(result.detections, key=lambda d: d.score).label
    defects = [score for score in result.class_scores if score.label != GOOD]
    if defects:
        return max(defects, key=lambda s: s.score).label
    return DEFECT


def label_from_ground_truth(frame: Frame) -> str | None:
    if frame.ground_truth is None:
        return None
    labels = [label for label in frame.ground_truth.labels if label != GOOD]
    return labels[0] if labels else GOOD


def _truth_boxes(frame: Frame) -> tuple[BoxLabel, ...]:
    assert frame.ground_truth is not None
    return tuple(BoxLabel(b.label, b.x_min, b.y_min, b.x_max, b.y_max) for b in frame.ground_truth.boxes)


def decide(
    frame: Frame, result: InspectionResult | None, correction: Correction | None, selection: ExportFilter
) -> Labelled | str:
    """The label and boxes a frame is exported with, or the reason it is skipped."""
    if correction is not None:
        if correction.boxes is not None or correction.label == GOOD:
            return Labelled(correction.label, correction.boxes or (), "correction")
        # A label without boxes: keep boxes from the truth or the model only where they agree with it.
        fallback = _truth_boxes(frame) if frame.ground_truth is not None else ()
        if not fallback and result is not None:
            fallback = _model_boxes(result, selection)
        return Labelled(
            correction.label, tuple(b for b in fallback if b.label == correction.label), "correction"
        )
    if (truth := label_from_ground_truth(frame)) is not None:
        return Labelled(truth, _truth_boxes(frame), "ground_truth")
    if result is None:
        return "no_result"
    label = label_from_result(result, selection.include_uncertain)
    if label is None:
        return f"verdict_{result.verdict.value.lower()}"
    return Labelled(label, _model_boxes(result, selection) if label != GOOD else (), "model")


def _model_boxes(result: InspectionResult, selection: ExportFilter) -> tuple[BoxLabel, ...]:
    return tuple(
        BoxLabel(d.label, d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max)
        for d in result.detections
        if d.score >= selection.min_box_score
    )


def _newer(result: InspectionResult, other: InspectionResult | None) -> bool:
    return other is None or result.inferred_at > other.inferred_at


def index_results(
    results: Iterable[InspectionResult], selection: ExportFilter
) -> dict[Identity, InspectionResult]:
    """One result per frame: the latest inference among those the filter accepts."""
    index: dict[Identity, InspectionResult] = {}
    for result in results:
        if selection.accepts(result) and _newer(result, index.get(result.identity)):
            index[result.identity] = result
    return index
