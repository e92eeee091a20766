"""Typed records for per-part decisions (``schemas/avro/PartDecision.avsc``), same conventions as
:mod:`schemas.records`: frozen keyword-only dataclasses, str-enums for Avro enums, aware UTC timestamps,
``to_dict()`` / ``from_dict()``, invariants checked on construction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from schemas import fields as check
from schemas.catalog import NAMESPACE
from schemas.fields import AvroDict, AvroMapping
from schemas.vocabulary import Verdict

PART_DECISIONS_TOPIC = "lineguard.part-decisions"


class PartOutcome(StrEnum):
    """What the reject gate does with a part (Avro enum ``PartOutcome``)."""

    UNKNOWN = "UNKNOWN"
    PASS = "PASS"
    REJECT = "REJECT"


class PartDecisionReason(StrEnum):
    """Why a part got its decision (Avro enum ``PartDecisionReason``)."""

    OTHER = "OTHER"
    ALL_OK = "ALL_OK"
    DEFECT = "DEFECT"
    UNCERTAIN = "UNCERTAIN"
    MISSING_VIEWS = "MISSING_VIEWS"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartView:
    """One camera's verdict on a part."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.PartView"

    camera_id: str
    station_id: str
    frame_number: int
    verdict: Verdict
    label: str | None = None
    score: float = 0.0

    def __post_init__(self) -> None:
        check.not_empty(self, "camera_id", self.camera_id)
        check.coerce_enum(self, "verdict", Verdict)
        check.unit_interval(self, "score", self.score)

    def to_dict(self) -> AvroDict:
        return {
            "camera_id": self.camera_id,
            "station_id": self.station_id,
            "frame_number": self.frame_number,
            "verdict": self.verdict.value,
            "label": self.label,
            "score": self.score,
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> PartView:
        return cls(
            camera_id=data["camera_id"],
            station_id=data["station_id"],
            frame_number=data["frame_number"],
            verdict=data["verdict"],
            label=data.get("label"),
            score=data.get("score", 0.0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PartDecision:
    """The decision for one part, keyed by ``part_id``: a replay repeats the same decision for the same id."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.PartDecision"

    part_id: str
    line_id: str
    decision: PartOutcome
    reason: PartDecisionReason
    rule: str
    defect_label: str | None = None
    views: Sequence[PartView] = ()
    missing_views: Sequence[str] = ()
    first_captured_at: datetime
    decided_at: datetime
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check.not_empty(self, "part_id", self.part_id)
        check.coerce_enum(self, "decision", PartOutcome)
        check.coerce_enum(self, "reason", PartDecisionReason)
        check.as_tuple(self, "views")
        check.as_tuple(self, "missing_views")
        check.require_utc(self, "first_captured_at")
        check.require_utc(self, "decided_at")
        if self.reason is PartDecisionReason.MISSING_VIEWS and not self.missing_views:
            raise check.fail(self, "reason MISSING_VIEWS needs the missing views")

    def to_dict(self) -> AvroDict:
        return {
            "part_id": self.part_id,
            "line_id": self.line_id,
            "decision": self.decision.value,
            "reason": self.reason.value,
            "rule": self.rule,
            "defect_label": self.defect_label,
            "views": [view.to_dict() for view in self.views],
            "missing_views": list(self.missing_views),
            "first_captured_at": self.first_captured_at,
            "decided_at": self.decided_at,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> PartDecision:
        return cls(
            part_id=data["part_id"],
            line_id=data["line_id"],
            decision=data["decision"],
            reason=data["reason"],
            rule=data["rule"],
            defect_label=data.get("defect_label"),
            views=tuple(PartView.from_dict(view) for view in data.get("views", ())),
            missing_views=tuple(data.get("missing_views", ())),
            first_captured_at=check.timestamp(data["first_captured_at"]),
            decided_at=check.timestamp(data["decided_at"]),
            metadata=data.get("metadata") or {},
        )
