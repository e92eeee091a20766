"""The ``DeadLetter`` record (``schemas/avro/DeadLetter.avsc``): an input a worker could not process, with its
source and original headers. Conventions: :mod:`schemas.records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from schemas import fields as check
from schemas.catalog import NAMESPACE
from schemas.fields import AvroDict, AvroMapping
from schemas.vocabulary import DeadLetterReason


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterSource:
    """Where a rejected record was read from. Kafka's -1 ("unknown") is allowed for every number."""

    avro_name: ClassVar[str] = f"{NAMESPACE}.DeadLetterSource"

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    def to_dict(self) -> AvroDict:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
        }

    @classmethod
    def from_dict(cls, data: AvroMapping) -> DeadLetterSource:
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

    def to_dict(self) -> AvroDict:
        return {"key": self.key, "value": self.value}

    @classmethod
    def from_dict(cls, data: AvroMapping) -> Header:
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
        check.coerce_enum(self, "reason", DeadLetterReason)
        check.as_tuple(self, "original_headers")
        check.require_utc(self, "failed_at")

    def to_dict(self) -> AvroDict:
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
    def from_dict(cls, data: AvroMapping) -> DeadLetter:
        return cls(
            reason=data["reason"],
            error_class=data["error_class"],
            error_message=data["error_message"],
            source=DeadLetterSource.from_dict(data["source"]),
            original_key=data.get("original_key"),
            original_value=data.get("original_value"),
            original_headers=tuple(Header.from_dict(header) for header in data.get("original_headers", ())),
            worker_id=data["worker_id"],
            failed_at=check.timestamp(data["failed_at"]),
        )
