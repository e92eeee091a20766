"""Poison records whose dead letter would be larger than the worker may produce (found by the bad-input
campaign: the producer refused the dead letter, the sink thread died and the worker crash-looped on the same
record). The dead letter must always fit; what it cannot keep it must say it dropped."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from schemas.records import DeadLetter, DeadLetterReason
from schemas.serde import AvroRecordSerializer
from workers.pipeline import _trace_id
from workers.sinks.dead_letters import RawRecord, build_dead_letter

BOUND = 64 * 1024


def _record(value: bytes, headers: tuple[tuple[str, bytes | None], ...] = (), key: bytes = b"k") -> RawRecord:
    return RawRecord("frames", 1, 42, None, key, value, headers)


def _serialized_size(letter: DeadLetter) -> int:
    return len(AvroRecordSerializer(DeadLetter)(letter)) + sum(
        len(h.key) + len(h.value or b"") for h in letter.original_headers
    )


def test_a_small_record_is_kept_verbatim() -> None:
    record = _record(b"\x01" * 1000, (("trace-id", b"abc"),))
    letter = build_dead_letter(record, DeadLetterReason.CORRUPT_IMAGE, "E", "bad", "w", max_bytes=BOUND)
    assert letter.original_value == record.value
    assert [(h.key, h.value) for h in letter.original_headers] == [("trace-id", b"abc")]


def test_an_oversize_value_or_header_is_left_out_and_said_so() -> None:
    record = _record(b"\x01" * (BOUND + 10), (("x-huge", bytes(300_000)), ("trace-id", b"abc")))
    letter = build_dead_letter(record, DeadLetterReason.OVERSIZE, "E", "too big", "w", max_bytes=BOUND)
    assert _serialized_size(letter) <= BOUND
    assert letter.original_value is None
    assert "omitted" in letter.error_message and "frames[1]@42" in letter.error_message
    assert ("trace-id", b"abc") in [(h.key, h.value) for h in letter.original_headers]


def test_a_huge_error_message_is_cut() -> None:
    letter = build_dead_letter(
        _record(b"x"), DeadLetterReason.OTHER, "E", "m" * 500_000, "w", max_bytes=BOUND
    )
    assert _serialized_size(letter) <= BOUND


def _message(headers: list[tuple[str, bytes]]) -> Any:
    return SimpleNamespace(headers=lambda: headers)


def test_trace_ids_are_carried_only_when_they_look_like_trace_ids() -> None:
    assert _trace_id(_message([("trace-id", b"4bf92f3577b34da6a3ce929d0e0e4736")])) == (
        b"4bf92f3577b34da6a3ce929d0e0e4736"
    )
    # A hostile header must not be copied onto every result and event (it could make them too large).
    assert _trace_id(_message([("trace-id", bytes(200_000))])) is None
