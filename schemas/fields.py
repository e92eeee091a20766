"""The field checks and conversions every record runs on construction (cheap: called per record on the hot
path), and the error they raise.

:class:`InvalidRecordError` is both a ``ValueError`` (a caller building a record made a mistake) and a
:class:`SerializationError` (bytes that decode to such a record are poison data).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from schemas.errors import SerializationError

#: The datum fastavro writes (``to_dict()``) and reads (``from_dict()``) for a record: field name -> value,
#: each value typed by the schema (text, numbers, bytes, datetimes, nested datums, lists, maps), so by no
#: single Python type.
AvroDict = dict[str, Any]
AvroMapping = Mapping[str, Any]


class InvalidRecordError(SerializationError, ValueError):
    """A record field breaks an invariant of the contract (e.g. a box corner outside [0, 1])."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fail(record: object, message: str) -> InvalidRecordError:
    """The error for ``record`` (named by its class) breaking an invariant; the caller raises it."""
    return InvalidRecordError(f"{type(record).__name__}: {message}")


def set_field(record: object, name: str, value: object) -> None:
    """Normalize a field of a frozen dataclass inside ``__post_init__``."""
    object.__setattr__(record, name, value)


def require_utc(record: object, name: str) -> None:
    """The field must be an aware datetime; one in another zone is converted to UTC, a naive one refused."""
    value = getattr(record, name)
    if type(value) is datetime and value.tzinfo is UTC:
        return
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise fail(record, f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
        set_field(record, name, value.astimezone(UTC))
        return
    raise fail(record, f"{name} must be a timezone-aware datetime, got {type(value).__name__}")


def timestamp(value: datetime | int) -> datetime:
    """A ``timestamp-micros`` value as readers return it (datetime) or raw microseconds since the epoch."""
    if isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value)
    return value


def as_tuple(record: object, name: str) -> None:
    """Store a sequence field as a tuple (records are immutable and hashable)."""
    value = getattr(record, name)
    if type(value) is not tuple:
        set_field(record, name, tuple(value))


def unit_interval(record: object, name: str, value: float) -> None:
    """The value must be in [0, 1]."""
    # Written so that NaN fails too.
    if not 0.0 <= value <= 1.0:
        raise fail(record, f"{name} must be in [0, 1], got {value!r}")


def coerce_enum(record: object, name: str, enum_cls: type[StrEnum]) -> None:
    """Store the field as a member of ``enum_cls`` (readers return the Avro symbol as text)."""
    value = getattr(record, name)
    if type(value) is enum_cls:
        return
    try:
        set_field(record, name, enum_cls(value))
    except ValueError:
        symbols = ", ".join(member.name for member in enum_cls)
        raise fail(record, f"{name} must be one of {symbols}, got {value!r}") from None


def not_empty(record: object, name: str, value: str) -> None:
    """The text field must not be empty."""
    if not value:
        raise fail(record, f"{name} must not be empty")
