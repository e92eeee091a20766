"""The ``InspectionResult`` record (``schemas/avro/InspectionResult.avsc``) and the records inside it: source
coordinates, model, class scores, detections. Conventions: :mod:`schemas.records`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from schemas import fields as check
from schemas.catalog import NAMESPACE
from schemas.fields import AvroDict, AvroMapping
from schemas.frame import Box
from schemas.vocabulary import Task, Verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaCoordinates:
    """Where a record was read from: topic, partition, offset."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.KafkaCoordinates"

    topic: str
    partition: int
    offset: int

    def __post_init__(self) -> None:
        if self.partition < 0 or self.offset < 0:
            raise check.fail(self, f"partition and offset must be >= 0, got {self.partition}/{self.offset}")

    def to_dict(self) -> AvroDict:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: AvroMapping) -> KafkaCoordinates:
        return cls(topic=data["topic"], partition=data["partition"], offset=data["offset"])


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """Which model produced a verdict: name, version, task."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.ModelInfo"

    name: str
    version: str
    task: Task

    def __post_init__(self) -> None:
        check.coerce_enum(self, "task", Task)

    def to_dict(self) -> AvroDict:
        return {"name": self.name, "version": self.version, "task": self.task.name}

    @classmethod
    def from_dict(cls, data: AvroMapping) -> ModelInfo:
        # Readers return the Avro symbol, Task's member name (its value is the short name models use).
        return cls(name=data["name"], version=data["version"], task=Task[data["task"]])


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassScore:
    """Score of one class, in [0, 1]."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.ClassScore"

    label: str
    score: float

    def __post_init__(self) -> None:
        check.unit_interval(self, "score", self.score)

    def to_dict(self) -> AvroDict:
        return {"label": self.label, "score": self.score}

    @classmethod
    def from_dict(cls, data: AvroMapping) -> ClassScore:
        return cls(label=data["label"], score=data["score"])


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    """One detected defect region: class, confidence in [0, 1], normalized box."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.Detection"

    label: str
    score: float
    box: Box

    def __post_init__(self) -> None:
        check.unit_interval(self, "score", self.score)

    def to_dict(self) -> AvroDict:
        return {"label": self.label, "score": self.score, "box": self.box.to_dict()}

    @classmethod
    def from_dict(cls, data: AvroMapping) -> Detection:
        return cls(label=data["label"], score=data["score"], box=Box.from_dict(data["box"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectionResult:
    """The verdict for one frame, written by a worker to the results topic for every frame it inspects."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.InspectionResult"

    camera_id: str
    line_id: str
    station_id: str
    frame_number: int
    part_id: str | None = None
    source: KafkaCoordinates
    model: ModelInfo
    verdict: Verdict
    class_scores: Sequence[ClassScore] = ()
    detections: Sequence[Detection] = ()
    anomaly_score: float | None = None
    anomaly_mask_png: bytes | None = None
    captured_at: datetime
    received_at: datetime
    inferred_at: datetime
    batch_size: int
    worker_id: str
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    # The verdict is the line's fail-safe decision, given because the deadline could not be met (v2 field).
    deadline_missed: bool = False

    def __post_init__(self) -> None:
        check.not_empty(self, "camera_id", self.camera_id)
        if self.frame_number < 0:
            raise check.fail(self, f"frame_number must be >= 0, got {self.frame_number}")
        if self.batch_size < 1:
            raise check.fail(self, f"batch_size must be >= 1, got {self.batch_size}")
        check.coerce_enum(self, "verdict", Verdict)
        check.as_tuple(self, "class_scores")
        check.as_tuple(self, "detections")
        check.require_utc(self, "captured_at")
        check.require_utc(self, "received_at")
        check.require_utc(self, "inferred_at")

    @property
    def identity(self) -> tuple[str, int]:
        """``(camera_id, frame_number)`` of the inspected frame."""
        return (self.camera_id, self.frame_number)

    def to_dict(self) -> AvroDict:
        return {
            "camera_id": self.camera_id,
            "line_id": self.line_id,
            "station_id": self.station_id,
            "frame_number": self.frame_number,
            "part_id": self.part_id,
            "source": self.source.to_dict(),
            "model": self.model.to_dict(),
            "verdict": self.verdict.value,
            "class_scores": [score.to_dict() for score in self.class_scores],
            "detections": [detection.to_dict() for detection in self.detections],
            "anomaly_score": self.anomaly_score,
            "anomaly_mask_png": self.anomaly_mask_png,
            "captured_at": self.captured_at,
            "received_at": self.received_at,
            "inferred_at": self.inferred_at,
            "batch_size": self.batch_size,
            "worker_id": self.worker_id,
            "metadata": dict(self.metadata),
            "deadline_missed": self.deadline_missed,
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> InspectionResult:
        return cls(
            camera_id=data["camera_id"],
            line_id=data["line_id"],
            station_id=data["station_id"],
            frame_number=data["frame_number"],
            part_id=data.get("part_id"),
            source=KafkaCoordinates.from_dict(data["source"]),
            model=ModelInfo.from_dict(data["model"]),
            verdict=data["verdict"],
            class_scores=tuple(ClassScore.from_dict(score) for score in data.get("class_scores", ())),
            detections=tuple(Detection.from_dict(detection) for detection in data.get("detections", ())),
            anomaly_score=data.get("anomaly_score"),
            anomaly_mask_png=data.get("anomaly_mask_png"),
            captured_at=check.timestamp(data["captured_at"]),
            received_at=check.timestamp(data["received_at"]),
            inferred_at=check.timestamp(data["inferred_at"]),
            batch_size=data["batch_size"],
            worker_id=data["worker_id"],
            metadata=data.get("metadata") or {},
            deadline_missed=bool(data.get("deadline_missed", False)),
        )
