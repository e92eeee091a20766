"""How every consumer names and summarises one inspection document: its stable id, the class its defect is
counted under and its image-level score.

The MongoDB sink, the MES sink, the report and the console all key and count inspections the same way, so
these live with the contract, on the ground floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def result_id(camera_id: str, frame_number: int, model_version: str) -> str:
    """The stable id of a frame's inspection by one model version: MongoDB ``_id`` and defect ``event_id``."""
    return f"{camera_id}:{frame_number}:{model_version}"


NO_CLASS = ""  # defect_class of frames that are not defects
UNCLASSIFIED = "unclassified"
GOOD_LABELS = frozenset({"good", "ok", "OK", "GOOD"})


def defect_class(document: Mapping[str, Any]) -> str:
    """The class a defect is counted under: first detection's label, else best non-good class score."""
    if document.get("verdict") != "DEFECT":
        return NO_CLASS
    for detection in document.get("detections") or ():
        label = detection.get("label")
        if label:
            return str(label)
    best: tuple[float, str] | None = None
    for score in document.get("class_scores") or ():
        label = score.get("label")
        if label and label not in GOOD_LABELS:
            value = float(score.get("score") or 0.0)
            if best is None or value > best[0]:
                best = (value, str(label))
    return best[1] if best else UNCLASSIFIED


def defect_score(document: Mapping[str, Any]) -> float | None:
    """The worker's image-level defect score (``metadata.defect_score``, text), else the anomaly score."""
    metadata = document.get("metadata") or {}
    raw = metadata.get("defect_score")
    if raw is None:
        raw = document.get("anomaly_score")
    try:
        return None if raw is None else float(raw)
    except (TypeError, ValueError):
        return None
