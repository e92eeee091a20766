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
from schemas.serde import AvroRecordSerializer
from schemas.topics import HEADER_DEAD_LETTER_REASON, HEADER_SCHEMA
from schemas.tracecontext import carried_context, output_headers


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


_MAX_ERROR_MESSAGE_CHARS = 2000
_KEPT_HEADER_BYTES = 1024  # header values up to this size are always kept (trace ids, content types...)
# What one header costs beyond its name and value bytes, in the Kafka record (two varints) or in the dead
# letter's Avro array (name length, union branch, value length): at most 11, counted as 16. Ignoring it let
# 120,000 empty headers turn a 360 KB record into a 480 KB dead letter.
HEADER_OVERHEAD_BYTES = 16
# A Kafka record's own framing (attributes, timestamp and offset deltas, lengths) beyond key, value, headers.
RECORD_OVERHEAD_BYTES = 64
_KEPT_HEADERS_SHARE = 4  # an omitted record keeps headers worth at most 1/4 of the bound


def header_bytes(headers: Sequence[tuple[str, bytes | str | None]]) -> int:
    """Bytes that ``headers`` take in a record (names UTF-8, each with its per-header overhead)."""
    total = 0
    for name, value in headers:
        size = len(value.encode() if isinstance(value, str) else (value or b""))
        total += len(name.encode("utf-8", "surrogatepass")) + size + HEADER_OVERHEAD_BYTES
    return total


def record_bytes(
    key: bytes | str | None, value: bytes | None, headers: Sequence[tuple[str, bytes | str | None]]
) -> int:
    """An upper bound of what a Kafka record of these parts counts against ``message.max.bytes``."""
    key_size = len(key.encode() if isinstance(key, str) else (key or b""))
    return key_size + len(value or b"") + header_bytes(headers) + RECORD_OVERHEAD_BYTES


_serialize_letter: AvroRecordSerializer[DeadLetter] | None = None


def dead_letter_bytes(letter: DeadLetter) -> int:
    """The size of the dead letter's Kafka record as the sink produces it (key, Avro value, headers)."""
    global _serialize_letter
    if _serialize_letter is None:
        _serialize_letter = AvroRecordSerializer(DeadLetter)
    return record_bytes(letter.original_key, _serialize_letter(letter), dead_letter_headers(letter))


def build_dead_letter(
    record: RawRecord,
    reason: DeadLetterReason,
    error_class: str,
    error_message: str,
    worker_id: str,
    failed_at: datetime | None = None,
    max_bytes: int | None = None,
) -> DeadLetter:
    """The dead letter for ``record``: original bytes and headers kept verbatim when the dead letter's
    serialized record fits in ``max_bytes`` (the largest record the worker's producer may send, measured,
    header overhead included). A record that does not fit (an oversize frame, hostile headers) would make the
    dead letter itself undeliverable and stop the worker on every retry; instead its value, large header
    values and headers beyond a share of the bound are left out, and the message says so and where the
    original still is."""
    message = error_message[:_MAX_ERROR_MESSAGE_CHARS]
    failed = failed_at if failed_at is not None else datetime.now(UTC)
    letter = _letter(
        record, reason, error_class, message, worker_id, failed, record.key, record.value, record.headers
    )
    if max_bytes is None or dead_letter_bytes(letter) <= max_bytes:
        return letter
    omitted = record_bytes(record.key, record.value, record.headers)
    budget = max_bytes // _KEPT_HEADERS_SHARE
    kept: list[tuple[str, bytes | None]] = []
    for name, value in record.headers:
        if value is not None and len(value) > _KEPT_HEADER_BYTES:
            value = None
        cost = header_bytes([(name, value)])
        if cost > budget:
            break
        kept.append((name, value))
        budget -= cost
    key = record.key if record.key is None or len(record.key) <= _KEPT_HEADER_BYTES else None
    dropped = len(record.headers) - len(kept)
    note = f"; {dropped} of {len(record.headers)} headers left out" if dropped else ""
    message = (
        f"{message} [original record of {omitted} bytes omitted from this dead letter (above "
        f"{max_bytes}){note}; it stays at {record.topic}[{record.partition}]@{record.offset} until retention]"
    )
    letter = _letter(record, reason, error_class, message, worker_id, failed, key, None, tuple(kept))
    if dead_letter_bytes(letter) > max_bytes:  # a bound too small for even that: the coordinates only
        letter = _letter(record, reason, error_class, message[-500:], worker_id, failed, None, None, ())
    return letter


def _letter(
    record: RawRecord,
    reason: DeadLetterReason,
    error_class: str,
    message: str,
    worker_id: str,
    failed_at: datetime,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        error_class=error_class[:200],
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
        failed_at=failed_at,
    )


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    """Headers of the dead-letter record: the reason, so consumers can filter without decoding, and the
    frame's trace (a child span of its traceparent), so the trace shows where the frame ended."""
    headers: list[tuple[str, str | bytes | None]] = [
        (HEADER_SCHEMA, DeadLetter.avro_name.encode()),
        (HEADER_DEAD_LETTER_REASON, letter.reason.value.encode()),
    ]
    headers.extend(output_headers(carried_context((h.key, h.value) for h in letter.original_headers)))
    return headers


def summarize(letters: Sequence[DeadLetter]) -> Counter[DeadLetterReason]:
    """How many dead letters per reason (for ``lineguard dlq inspect``)."""
    return Counter(letter.reason for letter in letters)


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()
