"""The ``DefectEvent`` record (``schemas/avro/DefectEvent.avsc``) and its regions. Conventions:
:mod:`schemas.records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from schemas import fields as check
from schemas.catalog import NAMESPACE
from schemas.fields import AvroDict, AvroMapping
from schemas.frame import Box
from schemas.result import KafkaCoordinates, ModelInfo
from schemas.vocabulary import Verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class DefectRegion:
    """A defect region with a small JPEG crop (the crop may be empty)."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.DefectRegion"

    label: str
    score: float
    box: Box
    crop_jpeg: bytes

    def __post_init__(self) -> None:
        check.unit_interval(self, "score", self.score)

    def to_dict(self) -> AvroDict:
        return {
            "label": self.label,
            "score": self.score,
            "box": self.box.to_dict(),
            "crop_jpeg": self.crop_jpeg,
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> DefectRegion:
        return cls(
            label=data["label"],
            score=data["score"],
            box=Box.from_dict(data["box"]),
            crop_jpeg=data["crop_jpeg"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DefectEvent:
    """A defect found on a frame, for reject gates, MES, dashboards; ``event_id`` is stable across replays."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.DefectEvent"

    event_id: str
    camera_id: str
    line_id: str
    station_id: str
    frame_number: int
    part_id: str | None = None
    captured_at: datetime
    detected_at: datetime
    model: ModelInfo
    verdict: Verdict
    regions: Sequence[DefectRegion] = ()
    anomaly_score: float | None = None
    source: KafkaCoordinates

    def __post_init__(self) -> None:
        check.not_empty(self, "event_id", self.event_id)
        check.not_empty(self, "camera_id", self.camera_id)
        if self.frame_number < 0:
            raise check.fail(self, f"frame_number must be >= 0, got {self.frame_number}")
        check.coerce_enum(self, "verdict", Verdict)
        check.as_tuple(self, "regions")
        check.require_utc(self, "captured_at")
        check.require_utc(self, "detected_at")

    def to_dict(self) -> AvroDict:
        return {
            "event_id": self.event_id,
            "camera_id": self.camera_id,
            "line_id": self.line_id,
            "station_id": self.station_id,
            "frame_number": self.frame_number,
            "part_id": self.part_id,
            "captured_at": self.captured_at,
            "detected_at": self.detected_at,
            "model": self.model.to_dict(),
            "verdict": self.verdict.value,
            "regions": [region.to_dict() for region in self.regions],
            "anomaly_score": self.anomaly_score,
            "source": self.source.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> DefectEvent:
        return cls(
            event_id=data["event_id"],
            camera_id=data["camera_id"],
            line_id=data["line_id"],
            station_id=data["station_id"],
            frame_number=data["frame_number"],
            part_id=data.get("part_id"),
            captured_at=check.timestamp(data["captured_at"]),
            detected_at=check.timestamp(data["detected_at"]),
            model=ModelInfo.from_dict(data["model"]),
            verdict=data["verdict"],
            regions=tuple(DefectRegion.from_dict(region) for region in data.get("regions", ())),
            anomaly_score=data.get("anomaly_score"),
            source=KafkaCoordinates.from_dict(data["source"]),
        )
