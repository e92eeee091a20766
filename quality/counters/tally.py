"""What one inspection result adds to the counters of its (line, window): pure logic, no store.

The window is the result's *capture* time floored to ``window_s`` (event time, as the MES sink's windows),
so a replay or a late record lands in the window it belongs to, not in the current one. Each result is
identified by `schemas.inspections.result_id` (MongoDB's ``_id``): a store counts an id once per window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.inspections import defect_class, result_id
from schemas.records import InspectionResult, Verdict

FRAMES = "frames"
DEADLINE_MISSED = "deadline_missed"
CLASS_PREFIX = "class:"  # defects per class: "class:scratch"


@dataclass(frozen=True, slots=True)
class Tally:
    """One result's contribution: +1 to each of ``fields`` of (line, window_start), once per ``result_id``."""

    line_id: str
    window_start: int  # epoch seconds, a multiple of the window length
    result_id: str
    fields: tuple[str, ...]


def window_start(epoch_s: float, window_s: int) -> int:
    return int(epoch_s // window_s) * window_s


def _class_of(result: InspectionResult) -> str:
    # only the fields defect_class reads: to_dict() of the whole record would cost more than the count
    document: Mapping[str, object] = {
        "verdict": result.verdict.value,
        "detections": [{"label": d.label} for d in result.detections],
        "class_scores": [{"label": s.label, "score": s.score} for s in result.class_scores],
    }
    return defect_class(document)


def tally(result: InspectionResult, window_s: int) -> Tally:
    fields = [FRAMES, result.verdict.value.lower()]
    if result.verdict is Verdict.DEFECT:
        fields.append(CLASS_PREFIX + _class_of(result))
    if result.deadline_missed:
        fields.append(DEADLINE_MISSED)
    return Tally(
        line_id=result.line_id,
        window_start=window_start(result.captured_at.timestamp(), window_s),
        result_id=result_id(result.camera_id, result.frame_number, result.model.version),
        fields=tuple(fields),
    )


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """The counters of one (line, window) as a store returns them."""

    line_id: str
    window_start: int
    window_s: int
    counts: Mapping[str, int]

    @property
    def frames(self) -> int:
        return self.counts.get(FRAMES, 0)

    @property
    def defects(self) -> int:
        return self.counts.get(Verdict.DEFECT.value.lower(), 0)

    def by_class(self) -> dict[str, int]:
        return {k[len(CLASS_PREFIX) :]: v for k, v in self.counts.items() if k.startswith(CLASS_PREFIX)}

    def to_json(self) -> dict[str, object]:
        return {
            "line_id": self.line_id,
            "window_start": self.window_start,
            "window_s": self.window_s,
            "frames": self.frames,
            "defects": self.defects,
            "ok": self.counts.get(Verdict.OK.value.lower(), 0),
            "uncertain": self.counts.get(Verdict.UNCERTAIN.value.lower(), 0),
            "deadline_missed": self.counts.get(DEADLINE_MISSED, 0),
            "defects_by_class": self.by_class(),
        }
