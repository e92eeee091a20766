"""The ``Frame`` record (``schemas/avro/Frame.avsc``) and the records inside it: box, claim-check reference,
ground truth. Conventions: :mod:`schemas.records`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from schemas import fields as check
from schemas.catalog import NAMESPACE
from schemas.fields import AvroDict, AvroMapping
from schemas.vocabulary import ImageEncoding


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
        check.unit_interval(self, "x_min", self.x_min)
        check.unit_interval(self, "y_min", self.y_min)
        check.unit_interval(self, "x_max", self.x_max)
        check.unit_interval(self, "y_max", self.y_max)
        if self.x_min > self.x_max or self.y_min > self.y_max:
            raise check.fail(
                self,
                f"min corner ({self.x_min}, {self.y_min}) is past max corner ({self.x_max}, {self.y_max})",
            )

    def to_dict(self) -> AvroDict:
        return {
            "label": self.label,
            "x_min": self.x_min,
            "y_min": self.y_min,
            "x_max": self.x_max,
            "y_max": self.y_max,
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> Box:
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
        check.not_empty(self, "uri", self.uri)
        if len(self.sha256) != 64:
            raise check.fail(self, f"sha256 must be 64 hex digits, got {len(self.sha256)} characters")
        if self.size_bytes < 0:
            raise check.fail(self, f"size_bytes must be >= 0, got {self.size_bytes}")

    def to_dict(self) -> AvroDict:
        return {"uri": self.uri, "sha256": self.sha256, "size_bytes": self.size_bytes}

    @classmethod
    def from_dict(cls, data: AvroMapping) -> ImageReference:
        return cls(uri=data["uri"], sha256=data["sha256"], size_bytes=data["size_bytes"])


@dataclass(frozen=True, slots=True, kw_only=True)
class GroundTruth:
    """Known labels of a frame (synthetic and evaluation data): classes present, boxes, optional PNG mask."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.GroundTruth"

    labels: Sequence[str]
    boxes: Sequence[Box] = ()
    mask_png: bytes | None = None

    def __post_init__(self) -> None:
        check.as_tuple(self, "labels")
        check.as_tuple(self, "boxes")

    def to_dict(self) -> AvroDict:
        return {
            "labels": list(self.labels),
            "boxes": [box.to_dict() for box in self.boxes],
            "mask_png": self.mask_png,
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> GroundTruth:
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
        check.not_empty(self, "camera_id", self.camera_id)
        if self.frame_number < 0:
            raise check.fail(self, f"frame_number must be >= 0, got {self.frame_number}")
        if self.width <= 0 or self.height <= 0:
            raise check.fail(self, f"width and height must be > 0, got {self.width}x{self.height}")
        if self.channels != 1 and self.channels != 3:
            raise check.fail(self, f"channels must be 1 (grey) or 3 (BGR), got {self.channels}")
        if self.image_ref is not None and self.image:
            raise check.fail(self, "image must be empty when image_ref is set (claim-check)")
        check.require_utc(self, "captured_at")
        check.coerce_enum(self, "encoding", ImageEncoding)

    @property
    def identity(self) -> tuple[str, int]:
        """``(camera_id, frame_number)``: what makes a frame unique across replays."""
        return (self.camera_id, self.frame_number)

    def to_dict(self) -> AvroDict:
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
    def from_dict(cls, data: AvroMapping) -> Frame:
        image_ref = data.get("image_ref")
        ground_truth = data.get("ground_truth")
        return cls(
            camera_id=data["camera_id"],
            line_id=data["line_id"],
            station_id=data["station_id"],
            frame_number=data["frame_number"],
            captured_at=check.timestamp(data["captured_at"]),
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
