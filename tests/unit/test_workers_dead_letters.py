"""Dead-letter records keep the original bytes and headers and say why and where."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.records import DeadLetter, DeadLetterReason
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from schemas.topics import HEADER_DEAD_LETTER_REASON
from workers.dlq import StoredDeadLetter, selector
from workers.sinks.dead_letters import RawRecord, build_dead_letter, dead_letter_headers, summarize


class FakeMessage:
    """The accessors of a confluent-kafka Message that dead letters read."""

    def topic(self) -> str:
        return "frames"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 77

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def key(self) -> bytes:
        return b"cam-1"

    def value(self) -> bytes:
        return b"\x00bad"

    def headers(self) -> list[tuple[str, bytes | None]]:
        return [("trace-id", b"abc"), ("empty", None)]


def test_dead_letter_keeps_original_record_and_round_trips_through_avro() -> None:
    failed_at = datetime(2026, 1, 1, tzinfo=UTC)
    letter = build_dead_letter(
        RawRecord.from_message(FakeMessage()),
        DeadLetterReason.CORRUPT_IMAGE,
        "FrameRejected",
        "bytes do not decode",
        worker_id="w-1",
        failed_at=failed_at,
    )
    assert letter.original_key == b"cam-1" and letter.original_value == b"\x00bad"
    assert [(h.key, h.value) for h in letter.original_headers] == [("trace-id", b"abc"), ("empty", None)]
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == ("frames", 2, 77)
    assert letter.source.timestamp_ms == 1_700_000_000_000
    assert (HEADER_DEAD_LETTER_REASON, b"CORRUPT_IMAGE") in dead_letter_headers(letter)
    decoded = AvroRecordDeserializer(DeadLetter)(AvroRecordSerializer(DeadLetter)(letter))
    assert decoded == letter


def test_summaries_and_replay_selection() -> None:
    def letter(reason: DeadLetterReason, partition: int) -> DeadLetter:
        raw = RawRecord("frames", partition, 1, None, None, b"v")
        return build_dead_letter(raw, reason, "E", "m", "w")

    letters = [
        letter(DeadLetterReason.CORRUPT_IMAGE, 0),
        letter(DeadLetterReason.CORRUPT_IMAGE, 1),
        letter(DeadLetterReason.OVERSIZE, 1),
    ]
    assert summarize(letters) == {DeadLetterReason.CORRUPT_IMAGE: 2, DeadLetterReason.OVERSIZE: 1}
    stored = [StoredDeadLetter(0, n, item) for n, item in enumerate(letters)]
    chosen = [s.offset for s in stored if selector([DeadLetterReason.CORRUPT_IMAGE], source_partition=1)(s)]
    assert chosen == [1]
    assert len([s for s in stored if selector()(s)]) == 3
