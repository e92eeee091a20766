"""Task-aware post-processing: a model's per-image prediction -> verdict, result record and defect event.

``vision.outputs`` turns raw outputs into a :class:`~vision.outputs.Prediction` with one ``defect_score`` per
image; here that score meets the thresholds of the frame's line or camera:

* ``defect_score >= defect`` -> DEFECT; ``>= uncertain`` -> UNCERTAIN (a band for manual review); else OK;
* classification: the class scores go into the result; a defect event carries one whole-image region
  labelled with the most likely defect class;
* detection: boxes scoring at least ``uncertain`` are reported and become event regions;
* segmentation: the class mask's connected regions (decoded by ``vision.outputs``) become boxes; the mask
  travels as a PNG;
* anomaly: the anomaly score is the defect score; the thresholded anomaly map's connected regions become
  boxes.

Thresholds default to the model's own (``model.json``) and can be overridden per line and per camera from a
YAML/JSON file that workers re-read between batches when it changes, so thresholds change without
re-exporting the model.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack

import numpy as np

from schemas.errors import ConfigurationError
from schemas.inspections import result_id
from schemas.records import (
    Box,
    ClassScore,
    DefectEvent,
    DefectRegion,
    Detection,
    InspectionResult,
    ModelInfo,
    Task,
    Verdict,
)
from vision.artifact import ModelMetadata
from vision.outputs import GOOD_LABEL, Prediction, found_defect
from workers.decode import DecodedFrame

log = logging.getLogger(__name__)

# Which key of model.json's ``thresholds`` is the image-level decision threshold, per task.
_THRESHOLD_KEYS = {
    Task.CLASSIFICATION: ("defect",),
    Task.DETECTION: ("score", "defect"),
    Task.SEGMENTATION: ("defect", "score"),
    Task.ANOMALY: ("anomaly", "defect"),
}
DEFAULT_UNCERTAIN_BAND = 0.2  # uncertain = defect x (1 - band) unless set explicitly


@dataclass(frozen=True, slots=True)
class VerdictThresholds:
    """``defect_score >= defect`` -> DEFECT, ``>= uncertain`` -> UNCERTAIN, else OK."""

    defect: float
    uncertain: float

    def __post_init__(self) -> None:
        if not self.uncertain <= self.defect:
            raise ConfigurationError(f"uncertain threshold {self.uncertain} is above defect {self.defect}")

    def verdict(self, score: float) -> Verdict:
        if score >= self.defect:
            return Verdict.DEFECT
        if score >= self.uncertain:
            return Verdict.UNCERTAIN
        return Verdict.OK

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base: VerdictThresholds | None = None
    ) -> VerdictThresholds:
        """``{"defect": x, "uncertain": y}``; missing keys come from ``base`` (uncertain follows defect)."""
        unknown = set(data) - {"defect", "uncertain"}
        if unknown:
            raise ConfigurationError(f"unknown threshold keys {sorted(unknown)} (expected defect, uncertain)")
        if "defect" in data:
            defect = float(data["defect"])
            uncertain = float(data.get("uncertain", defect * (1 - DEFAULT_UNCERTAIN_BAND)))
        elif base is not None:
            defect = base.defect
            uncertain = float(data.get("uncertain", base.uncertain))
        else:
            raise ConfigurationError("a threshold entry needs at least 'defect'")
        return cls(defect=defect, uncertain=uncertain)


def model_thresholds(metadata: ModelMetadata) -> VerdictThresholds:
    """The model's own decision threshold (``model.json``), with the default uncertain band below it."""
    for key in _THRESHOLD_KEYS[metadata.task]:
        if key in metadata.thresholds:
            defect = float(metadata.thresholds[key])
            break
    else:
        defect = 0.5
        log.warning("model %s has no decision threshold in model.json; using %.2f", metadata.name, defect)
    return VerdictThresholds(defect=defect, uncertain=defect * (1 - DEFAULT_UNCERTAIN_BAND))


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """Thresholds per camera, else per line, else the default."""

    default: VerdictThresholds
    lines: Mapping[str, VerdictThresholds] = field(default_factory=dict)
    cameras: Mapping[str, VerdictThresholds] = field(default_factory=dict)

    def for_frame(self, line_id: str, camera_id: str) -> VerdictThresholds:
        found = self.cameras.get(camera_id)
        if found is not None:
            return found
        return self.lines.get(line_id, self.default)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], model_default: VerdictThresholds) -> ThresholdPolicy:
        """``{"default": {...}, "lines": {line: {...}}, "cameras": {camera: {...}}}``; camera entries inherit
        from nothing but the default (a camera override is complete on its own)."""
        unknown = set(data) - {"default", "lines", "cameras"}
        if unknown:
            raise ConfigurationError(f"unknown threshold sections {sorted(unknown)}")
        default = VerdictThresholds.from_mapping(data.get("default") or {}, model_default)
        lines = {k: VerdictThresholds.from_mapping(v, default) for k, v in (data.get("lines") or {}).items()}
        cameras = {
            k: VerdictThresholds.from_mapping(v, default) for k, v in (data.get("cameras") or {}).items()
        }
        return cls(default=default, lines=lines, cameras=cameras)


class ThresholdLookup(Protocol):
    """Where a builder gets the thresholds of a frame (a file, the model registry's live entries)."""

    def for_frame(self, line_id: str, camera_id: str) -> VerdictThresholds: ...

    def refresh(self) -> object:
        """Pick up changes; called between batches."""
        ...


class ThresholdSource:
    """The current :class:`ThresholdPolicy`: the model's default, or a file re-read when it changes."""

    def __init__(self, model_default: VerdictThresholds, path: Path | None = None) -> None:
        self._model_default = model_default
        self._path = path
        self._mtime: float | None = None
        self._policy = ThresholdPolicy(default=model_default)
        if path is not None:
            self.refresh(strict=True)

    @property
    def policy(self) -> ThresholdPolicy:
        return self._policy

    def for_frame(self, line_id: str, camera_id: str) -> VerdictThresholds:
        return self._policy.for_frame(line_id, camera_id)

    def refresh(self, strict: bool = False) -> ThresholdPolicy:
        """Re-read the file if it changed; a broken edit keeps the old policy (logged) unless ``strict``."""
        if self._path is None:
            return self._policy
        try:
            mtime = os.stat(self._path).st_mtime
            if mtime == self._mtime:
                return self._policy
            self._policy = ThresholdPolicy.from_mapping(_read_mapping(self._path), self._model_default)
            self._mtime = mtime
            log.info("thresholds loaded from %s", self._path)
        except (OSError, ValueError, ConfigurationError) as exc:
            if strict:
                raise ConfigurationError(f"cannot read thresholds {self._path}: {exc}") from exc
            log.error("thresholds %s not reloaded, keeping the previous ones: %s", self._path, exc)
            self._mtime = None
        return self._policy


def _read_mapping(path: Path) -> Mapping[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, Mapping):
        raise ValueError("the thresholds file must hold a mapping")
    return data


class ResultBuilder:
    """Builds the result and, for a defect, the defect event of one frame."""

    def __init__(
        self,
        metadata: ModelMetadata,
        thresholds: ThresholdLookup,
        worker_id: str,
        crop_size: int = 96,
        uncertain_events: bool = True,
    ) -> None:
        self._metadata = metadata
        self._task = metadata.task
        self.model_info = ModelInfo(name=metadata.name, version=metadata.version, task=metadata.task)
        self._thresholds = thresholds
        self._worker_id = worker_id
        self._crop_size = crop_size
        self._event_verdicts = {Verdict.DEFECT, Verdict.UNCERTAIN} if uncertain_events else {Verdict.DEFECT}

    def refresh_thresholds(self) -> None:
        """Pick up an edited thresholds file (cheap when unchanged: one stat)."""
        self._thresholds.refresh()

    def build(
        self, decoded: DecodedFrame, prediction: Prediction, inferred_at: datetime, batch_size: int
    ) -> tuple[InspectionResult, DefectEvent | None]:
        frame = decoded.frame
        limits = self._thresholds.for_frame(frame.line_id, frame.camera_id)
        verdict = limits.verdict(prediction.defect_score)
        detections = self._detections(prediction, limits)
        mask_png = _mask_png(prediction.mask) if self._task in (Task.SEGMENTATION, Task.ANOMALY) else None
        result = frame_result(
            decoded,
            self.model_info,
            verdict,
            inferred_at,
            batch_size,
            self._worker_id,
            class_scores=tuple(
                ClassScore(label=label, score=_unit(score))
                for label, score in prediction.class_scores.items()
            ),
            detections=detections,
            anomaly_score=prediction.anomaly_score,
            anomaly_mask_png=mask_png,
            metadata={"defect_score": f"{prediction.defect_score:.4f}"},
        )
        if verdict not in self._event_verdicts:
            return result, None
        return result, self._event(decoded, result, prediction)

    def _detections(self, prediction: Prediction, limits: VerdictThresholds) -> tuple[Detection, ...]:
        if self._task is Task.CLASSIFICATION:
            return ()
        found = prediction.detections
        if self._task is Task.ANOMALY and prediction.mask is not None:
            found = _mask_regions(prediction.mask, "anomaly", prediction.defect_score)
        if self._task is Task.DETECTION:
            found = tuple(d for d in found if d.score >= limits.uncertain)
        return found

    def _event(self, decoded: DecodedFrame, result: InspectionResult, prediction: Prediction) -> DefectEvent:
        boxes = [d.box for d in result.detections]
        scores = [d.score for d in result.detections]
        if not boxes:  # classification, or no region found: the whole image, labelled with the top defect
            label = _top_defect_class(prediction) or "defect"
            boxes = [Box(label=label, x_min=0.0, y_min=0.0, x_max=1.0, y_max=1.0)]
            scores = [_unit(prediction.defect_score)]
        regions = tuple(
            DefectRegion(
                label=box.label,
                score=score,
                box=box,
                crop_jpeg=crop_jpeg(decoded.image, box, self._crop_size),
            )
            for box, score in zip(boxes, scores, strict=True)
        )
        return DefectEvent(
            event_id=result_id(result.camera_id, result.frame_number, self.model_info.version),
            camera_id=result.camera_id,
            line_id=result.line_id,
            station_id=result.station_id,
            frame_number=result.frame_number,
            part_id=result.part_id,
            captured_at=result.captured_at,
            detected_at=result.inferred_at,
            model=self.model_info,
            verdict=result.verdict,
            regions=regions,
            anomaly_score=result.anomaly_score,
            source=result.source,
        )


class DecidedFields(TypedDict, total=False):
    """The fields of a result that whoever decided the verdict fills in (the rest come from the frame)."""

    class_scores: Sequence[ClassScore]
    detections: Sequence[Detection]
    anomaly_score: float | None
    anomaly_mask_png: bytes | None
    metadata: Mapping[str, str]
    deadline_missed: bool


def frame_result(
    decoded: DecodedFrame,
    model: ModelInfo,
    verdict: Verdict,
    inferred_at: datetime,
    batch_size: int,
    worker_id: str,
    **fields: Unpack[DecidedFields],
) -> InspectionResult:
    """The result of one frame: its identity and timings from the frame, the verdict and ``fields`` (scores,
    detections, metadata, ...) from whoever decided it (the model, or the deadline's fail-safe)."""
    frame = decoded.frame
    return InspectionResult(
        camera_id=frame.camera_id,
        line_id=frame.line_id,
        station_id=frame.station_id,
        frame_number=frame.frame_number,
        part_id=frame.part_id,
        source=decoded.source,
        model=model,
        verdict=verdict,
        captured_at=frame.captured_at,
        received_at=decoded.received_at,
        inferred_at=inferred_at,
        batch_size=batch_size,
        worker_id=worker_id,
        **fields,
    )


def crop_jpeg(image: np.ndarray, box: Box, max_side: int, quality: int = 80) -> bytes:
    """A small JPEG of the box's region (longest side at most ``max_side``); b"" for an empty region."""
    import cv2

    height, width = image.shape[:2]
    x0, x1 = int(box.x_min * width), int(np.ceil(box.x_max * width))
    y0, y1 = int(box.y_min * height), int(np.ceil(box.y_max * height))
    region = image[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    if region.size == 0:
        return b""
    longest = max(region.shape[:2])
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return encoded.tobytes() if ok else b""


def _mask_png(mask: np.ndarray | None) -> bytes | None:
    if mask is None:
        return None
    import cv2

    ok, encoded = cv2.imencode(".png", mask.astype(np.uint8))
    return encoded.tobytes() if ok else None


def _mask_regions(mask: np.ndarray, label: str, score: float, min_area: int = 4) -> tuple[Detection, ...]:
    """Connected regions of a 0/1 mask as normalized boxes."""
    import cv2

    height, width = mask.shape[:2]
    count, _labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    regions = []
    for component in range(1, count):
        x, y, w, h, area = stats[component]
        if area >= min_area:
            regions.append(
                found_defect(label, score, x / width, y / height, (x + w) / width, (y + h) / height)
            )
    return tuple(regions)


def _top_defect_class(prediction: Prediction) -> str | None:
    defects = {k: v for k, v in prediction.class_scores.items() if k != GOOD_LABEL}
    return max(defects, key=defects.__getitem__) if defects else None


def _unit(score: float) -> float:
    # Scores must be in [0, 1] on the wire; anomaly scores are clipped for the per-region score only.
    return float(min(1.0, max(0.0, score)))
