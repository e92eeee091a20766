"""Typed records mirroring the shipped Avro schemas (``schemas/avro/*.avsc``), namespace ``dev.lineguard.v1``.

Conventions, the same for every record:

* frozen, slotted, keyword-only dataclasses; Avro arrays are tuples, Avro maps are read-only ``Mapping``\\ s;
* Avro enums are :class:`enum.StrEnum` whose values are the Avro symbols;
* ``timestamp-micros`` fields are timezone-aware UTC :class:`datetime` (an aware datetime in another zone is
  converted to UTC; a naive one is refused, because its instant is unknown);
* ``to_dict()`` returns the dict fastavro (and confluent's ``AvroSerializer``) writes, ``from_dict()``
  builds the record from the dict a reader returns; fields with an Avro default may be missing from it.

Invariants that no valid record can break (box corners in [0, 1] with min <= max, positive image size, 1 or
3 channels, scores in [0, 1], ...) are checked on construction and raise :class:`InvalidRecordError`, which is
both a ``ValueError`` (a caller building a record made a mistake) and a :class:`SerializationError` (bytes
that decode to such a record are poison data). The checks are a few comparisons: frames are built thousands
of times a second.
Whether an image actually decodes, or matches its declared size, is the worker's job, not the record's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from schemas.catalog import NAMESPACE
from schemas.errors import SerializationError


class InvalidRecordError(SerializationError, ValueError):
    """A record field breaks an invariant of the contract (e.g. a box corner outside [0, 1])."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- enums -----------------------------------------------------------------------------------------


class ImageEncoding(StrEnum):
    """How a frame's ``image`` bytes are encoded (Avro enum ``ImageEncoding``)."""

    UNKNOWN = "UNKNOWN"
    JPEG = "JPEG"
    PNG = "PNG"


class Task(StrEnum):
    """Vision task of a model (Avro enum ``Task``)."""

    UNKNOWN = "UNKNOWN"
    CLASSIFICATION = "CLASSIFICATION"
    DETECTION = "DETECTION"
    SEGMENTATION = "SEGMENTATION"
    ANOMALY = "ANOMALY"


class Verdict(StrEnum):
    """Outcome of inspecting one frame (Avro enum ``Verdict``)."""

    UNKNOWN = "UNKNOWN"
    OK = "OK"
    DEFECT = "DEFECT"
    UNCERTAIN = "UNCERTAIN"


class DeadLetterReason(StrEnum):
    """Why a worker rejected an input (Avro enum ``DeadLetterReason``)."""

    OTHER = "OTHER"
    UNDECODABLE_RECORD = "UNDECODABLE_RECORD"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    EMPTY_IMAGE = "EMPTY_IMAGE"
    WRONG_DIMENSIONS = "WRONG_DIMENSIONS"
    OVERSIZE = "OVERSIZE"
    CLAIM_CHECK_FAILED = "CLAIM_CHECK_FAILED"


# -- field helpers (cheap: called per record on the hot path) --------------------------------------


def _fail(record: object, message: str) -> InvalidRecordError:
    return InvalidRecordError(f"{type(record).__name__}: {message}")


def _set(record: object, name: str, value: object) -> None:
    # Normalizing a field of a frozen dataclass inside __post_init__.
    object.__setattr__(record, name, value)


def _utc(record: object, name: str) -> None:
    value = getattr(record, name)
    if type(value) is datetime and value.tzinfo is UTC:
        return
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _fail(record, f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
        _set(record, name, value.astimezone(UTC))
        return
    raise _fail(record, f"{name} must be a timezone-aware datetime, got {type(value).__name__}")


def _timestamp(value: Any) -> datetime:
    """A ``timestamp-micros`` value as readers return it (datetime) or raw microseconds since the epoch."""
    if isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value)
    return value


def _tuple(record: object, name: str) -> None:
    value = getattr(record, name)
    if type(value) is not tuple:
        _set(record, name, tuple(value))


def _unit_interval(record: object, name: str, value: float) -> None:
    # Written so that NaN fails too.
    if not 0.0 <= value <= 1.0:
        raise _fail(record, f"{name} must be in [0, 1], got {value!r}")


def _enum(record: object, name: str, enum_cls: type[StrEnum]) -> None:
    value = getattr(record, name)
    if type(value) is enum_cls:
        return
    try:
        _set(record, name, enum_cls(value))
    except ValueError:
        symbols = ", ".join(enum_cls)
        raise _fail(record, f"{name} must be one of {symbols}, got {value!r}") from None


def _not_empty(record: object, name: str, value: str) -> None:
    if not value:
        raise _fail(record, f"{name} must not be empty")


# -- Frame and its parts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Box:
    """A labelled axis-aligned box, corners normalized to [0, 1] of the image size, min <= max."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.Box"

    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def __post_init__(self) -> None:
        _unit_interval(self, "x_min", self.x_min)
        _unit_interval(self, "y_min", self.y_min)
        _unit_interval(self, "x_max", self.x_max)
        _unit_interval(self, "y_max", self.y_max)
        if self.x_min > self.x_max or self.y_min > self.y_max:
            raise _fail(
                self,
                f"min corner ({self.x_min}, {self.y_min}) is past max corner ({self.x_max}, {self.y_max})",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "x_min": self.x_min,
            "y_min": self.y_min,
            "x_max": self.x_max,
            "y_max": self.y_max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Box:
        return cls(
            label=data["label"],
            x_min=data["x_min"],
            y_min=data["y_min"],
            x_max=data["x_max"],
            y_max=data["y_max"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageReference:
    """Claim-check: where an image too large to travel inline is stored, with its hash and size."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.ImageReference"

    uri: str
    sha256: str
    size_bytes: int

    def __post_init__(self) -> None:
        _not_empty(self, "uri", self.uri)
        if len(self.sha256) != 64:
            raise _fail(self, f"sha256 must be 64 hex digits, got {len(self.sha256)} characters")
        if self.size_bytes < 0:
            raise _fail(self, f"size_bytes must be >= 0, got {self.size_bytes}")

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "size_bytes": self.size_bytes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageReference:
        return cls(uri=data["uri"], sha256=data["sha256"], size_bytes=data["size_bytes"])


@dataclass(frozen=True, slots=True, kw_only=True)
class GroundTruth:
    """Known labels of a frame (synthetic and evaluation data): classes present, boxes, optional PNG mask."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.GroundTruth"

    labels: Sequence[str] = ()
    boxes: Sequence[Box] = ()
    mask_png: bytes | None = None

    def __post_init__(self) -> None:
        _tuple(self, "labels")
        _tuple(self, "boxes")

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "boxes": [box.to_dict() for box in self.boxes],
            "mask_png": self.mask_png,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroundTruth:
        return cls(
            labels=tuple(data["labels"]),
            boxes=tuple(Box.from_dict(box) for box in data.get("boxes", ())),
            mask_png=data.get("mask_png"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One camera frame. ``(camera_id, frame_number)`` is its identity; ``camera_id`` is also the Kafka key.

    ``image`` holds the encoded bytes, or is empty when the image is stored by reference (``image_ref``);
    both at once is refused. An empty image without a reference is representable on purpose: a worker
    dead-letters it as ``EMPTY_IMAGE`` instead of failing to decode the record.
    """

    avro_name: ClassVar[str] = f"{NAMESPACE}.Frame"

    camera_id: str
    line_id: str
    station_id: str
    frame_number: int
    captured_at: datetime
    width: int
    height: int
    channels: int
    encoding: ImageEncoding
    image: bytes
    image_ref: ImageReference | None = None
    part_id: str | None = None
    ground_truth: GroundTruth | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _not_empty(self, "camera_id", self.camera_id)
        if self.frame_number < 0:
            raise _fail(self, f"frame_number must be >= 0, got {self.frame_number}")
        if self.width <= 0 or self.height <= 0:
            raise _fail(self, f"width and height must be > 0, got {self.width}x{self.height}")
        if self.channels != 1 and self.channels != 3:
            raise _fail(self, f"channels must be 1 (grey) or 3 (BGR), got {self.channels}")
        if self.image_ref is not None and self.image:
            raise _fail(self, "image must be empty when image_ref is set (claim-check)")
        _utc(self, "captured_at")
        _enum(self, "encoding", ImageEncoding)

    @property
    def identity(self) -> tuple[str, int]:
        """``(camera_id, frame_number)``: what makes a frame unique across replays."""
        return (self.camera_id, self.frame_number)

    def to_dict(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "line_id": self.line_id,
            "station_id": self.station_id,
            "frame_number": self.frame_number,
            "captured_at": self.captured_at,
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "encoding": self.encoding.value,
            "image": self.image,
            "image_ref": None if self.image_ref is None else self.image_ref.to_dict(),
            "part_id": self.part_id,
            "ground_truth": None if self.ground_truth is None else self.ground_truth.to_dict(),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Frame:
        image_ref = data.get("image_ref")
        ground_truth = data.get("ground_truth")
        return cls(
            camera_id=data["camera_id"],
            line_id=data["line_id"],
            station_id=data["station_id"],
            frame_number=data["frame_number"],
            captured_at=_timestamp(data["captured_at"]),
            width=data["width"],
            height=data["height"],
            channels=data["channels"],
            encoding=data["encoding"],
            image=data["image"],
            image_ref=None if image_ref is None else ImageReference.from_dict(image_ref),
            part_id=data.get("part_id"),
            ground_truth=None if ground_truth is None else GroundTruth.from_dict(ground_truth),
            metadata=data.get("metadata") or {},
        )


# -- InspectionResult and its parts ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaCoordinates:
    """Where a record was read from: topic, partition, offset."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.KafkaCoordinates"

    topic: str
    partition: int
    offset: int

    def __post_init__(self) -> None:
        if self.partition < 0 or self.offset < 0:
            raise _fail(self, f"partition and offset must be >= 0, got {self.partition}/{self.offset}")

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KafkaCoordinates:
        return cls(topic=data["topic"], partition=data["partition"], offset=data["offset"])


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """Which model produced a verdict: name, version, task."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.ModelInfo"

    name: str
    version: str
    task: Task

    def __post_init__(self) -> None:
        _enum(self, "task", Task)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "task": self.task.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        return cls(name=data["name"], version=data["version"], task=data["task"])


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassScore:
    """Score of one class, in [0, 1]."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.ClassScore"

    label: str
    score: float

    def __post_init__(self) -> None:
        _unit_interval(self, "score", self.score)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassScore:
        return cls(label=data["label"], score=data["score"])


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    """One detected defect region: class, confidence in [0, 1], normalized box."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.Detection"

    label: str
    score: float
    box: Box

    def __post_init__(self) -> None:
        _unit_interval(self, "score", self.score)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "box": self.box.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Detection:
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
        _not_empty(self, "camera_id", self.camera_id)
        if self.frame_number < 0:
            raise _fail(self, f"frame_number must be >= 0, got {self.frame_number}")
        if self.batch_size < 1:
            raise _fail(self, f"batch_size must be >= 1, got {self.batch_size}")
        _enum(self, "verdict", Verdict)
        _tuple(self, "class_scores")
        _tuple(self, "detections")
        _utc(self, "captured_at")
        _utc(self, "received_at")
        _utc(self, "inferred_at")

    @property
    def identity(self) -> tuple[str, int]:
        """``(camera_id, frame_number)`` of the inspected frame."""
        return (self.camera_id, self.frame_number)

    def to_dict(self) -> dict[str, Any]:
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
    def from_dict(cls, data: Mapping[str, Any]) -> InspectionResult:
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
            captured_at=_timestamp(data["captured_at"]),
            received_at=_timestamp(data["received_at"]),
            inferred_at=_timestamp(data["inferred_at"]),
            batch_size=data["batch_size"],
            worker_id=data["worker_id"],
            metadata=data.get("metadata") or {},
            deadline_missed=bool(data.get("deadline_missed", False)),
        )


# -- DefectEvent -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DefectRegion:
    """A defect region with a small JPEG crop (the crop may be empty)."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.DefectRegion"

    label: str
    score: float
    box: Box
    crop_jpeg: bytes = b""

    def __post_init__(self) -> None:
        _unit_interval(self, "score", self.score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "box": self.box.to_dict(),
            "crop_jpeg": self.crop_jpeg,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DefectRegion:
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
        _not_empty(self, "event_id", self.event_id)
        _not_empty(self, "camera_id", self.camera_id)
        if self.frame_number < 0:
            raise _fail(self, f"frame_number must be >= 0, got {self.frame_number}")
        _enum(self, "verdict", Verdict)
        _tuple(self, "regions")
        _utc(self, "captured_at")
        _utc(self, "detected_at")

    def to_dict(self) -> dict[str, Any]:
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
    def from_dict(cls, data: Mapping[str, Any]) -> DefectEvent:
        return cls(
            event_id=data["event_id"],
            camera_id=data["camera_id"],
            line_id=data["line_id"],
            station_id=data["station_id"],
            frame_number=data["frame_number"],
            part_id=data.get("part_id"),
            captured_at=_timestamp(data["captured_at"]),
            detected_at=_timestamp(data["detected_at"]),
            model=ModelInfo.from_dict(data["model"]),
            verdict=data["verdict"],
            regions=tuple(DefectRegion.from_dict(region) for region in data.get("regions", ())),
            anomaly_score=data.get("anomaly_score"),
            source=KafkaCoordinates.from_dict(data["source"]),
        )


# -- DeadLetter ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterSource:
    """Where a rejected record was read from. Kafka's -1 ("unknown") is allowed for every number."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.DeadLetterSource"

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeadLetterSource:
        return cls(
            topic=data["topic"],
            partition=data["partition"],
            offset=data["offset"],
            timestamp_ms=data.get("timestamp_ms"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """A Kafka header: name and optional value bytes."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.Header"

    key: str
    value: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Header:
        return cls(key=data["key"], value=data.get("value"))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """An input a worker could not process, with the reason and the original bytes (nothing is dropped)."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.DeadLetter"

    reason: DeadLetterReason
    error_class: str
    error_message: str
    source: DeadLetterSource
    original_key: bytes | None = None
    original_value: bytes | None = None
    original_headers: Sequence[Header] = ()
    worker_id: str
    failed_at: datetime

    def __post_init__(self) -> None:
        _enum(self, "reason", DeadLetterReason)
        _tuple(self, "original_headers")
        _utc(self, "failed_at")

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "source": self.source.to_dict(),
            "original_key": self.original_key,
            "original_value": self.original_value,
            "original_headers": [header.to_dict() for header in self.original_headers],
            "worker_id": self.worker_id,
            "failed_at": self.failed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeadLetter:
        return cls(
            reason=data["reason"],
            error_class=data["error_class"],
            error_message=data["error_message"],
            source=DeadLetterSource.from_dict(data["source"]),
            original_key=data.get("original_key"),
            original_value=data.get("original_value"),
            original_headers=tuple(Header.from_dict(header) for header in data.get("original_headers", ())),
            worker_id=data["worker_id"],
            failed_at=_timestamp(data["failed_at"]),
        )


#: The records that travel as Kafka values, each with a shipped top-level schema.
TOP_LEVEL_RECORDS: tuple[type, ...] = (Frame, InspectionResult, DefectEvent, DeadLetter)
