"""Dead letters: the original record (key, value, headers), where it came from, and why it was rejected.

Nothing is dropped silently: every rejected record becomes a :class:`~schemas.records.DeadLetter` on the
dead-letter topic, is counted by reason, and its offset is committed once the dead letter is acknowledged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.records import DeadLetter, DeadLetterReason, DeadLetterSource, Header
from schemas.topics import HEADER_DEAD_LETTER_REASON, HEADER_SCHEMA


@dataclass(frozen=True, slots=True)
class RawRecord:
    """The parts of a consumed Kafka record a dead letter keeps (decoupled from confluent's ``Message``)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @classmethod
    def from_message(cls, message: Any) -> RawRecord:
        """From a confluent-kafka ``Message``."""
        timestamp_type, timestamp = message.timestamp()
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            timestamp_ms=timestamp if timestamp_type != 0 and timestamp >= 0 else None,  # 0 = not available
            key=message.key(),
            value=message.value(),
            headers=tuple((name, _as_bytes(value)) for name, value in (message.headers() or ())),
        )


# Room for the dead letter's own fields (reason, classes, coordinates, worker id, time) below the bound.
_ENVELOPE_BYTES = 4 * 1024
_MAX_ERROR_MESSAGE_CHARS = 2000
_KEPT_HEADER_BYTES = 1024  # header values up to this size are always kept (trace ids, content types...)


def build_dead_letter(
    record: RawRecord,
    reason: DeadLetterReason,
    error_class: str,
    error_message: str,
    worker_id: str,
    failed_at: datetime | None = None,
    max_bytes: int | None = None,
) -> DeadLetter:
    """The dead letter for ``record``: original bytes and headers kept verbatim when they fit in
    ``max_bytes`` (the largest record the worker's producer may send). A record that does not fit (an oversize
    frame, hostile headers) would make the dead letter itself undeliverable and stop the worker on every
    retry; instead its value and large header values are left out, and the message says so and where the
    original still is."""
    value, headers, key = record.value, record.headers, record.key
    message = error_message[:_MAX_ERROR_MESSAGE_CHARS]
    if max_bytes is not None and _original_size(record) + _ENVELOPE_BYTES + len(message) > max_bytes:
        omitted = _original_size(record)
        value = None
        headers = tuple(
            (name, v if v is None or len(v) <= _KEPT_HEADER_BYTES else None) for name, v in headers
        )
        key = key if key is None or len(key) <= _KEPT_HEADER_BYTES else None
        message = (
            f"{message} [original record of {omitted} bytes omitted from this dead letter (above "
            f"{max_bytes}); it stays at {record.topic}[{record.partition}]@{record.offset} until retention]"
        )
    return DeadLetter(
        reason=reason,
        error_class=error_class,
        error_message=message,
        source=DeadLetterSource(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
        ),
        original_key=key,
        original_value=value,
        original_headers=tuple(Header(key=name, value=header) for name, header in headers),
        worker_id=worker_id,
        failed_at=failed_at if failed_at is not None else datetime.now(UTC),
    )


def _original_size(record: RawRecord) -> int:
    headers = sum(len(name) + len(value or b"") for name, value in record.headers)
    return len(record.key or b"") + len(record.value or b"") + headers


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    """Headers of the dead-letter record: the reason, so consumers can filter without decoding."""
    return [
        (HEADER_SCHEMA, DeadLetter.avro_name.encode()),
        (HEADER_DEAD_LETTER_REASON, letter.reason.value.encode()),
    ]


def summarize(letters: Sequence[DeadLetter]) -> Counter[DeadLetterReason]:
    """How many dead letters per reason (for ``lineguard dlq inspect``)."""
    return Counter(letter.reason for letter in letters)


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()
