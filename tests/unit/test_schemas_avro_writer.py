"""The splicing writer must produce exactly fastavro's encoding, and any valid record must round-trip."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.avro_writer import RecordBodyWriter, encode_long
from schemas.catalog import compile_schema, shipped_schema
from schemas.records import DeadLetter, DeadLetterReason, DeadLetterSource, Frame, Header, ImageEncoding
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer

LONGS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=20)
TIMESTAMPS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


def fastavro_bytes(schema_name: str, datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, shipped_schema(schema_name).parsed, datum)
    return buffer.getvalue()


@given(LONGS)
def test_encode_long_matches_fastavro(value: int) -> None:
    buffer = io.BytesIO()
    schemaless_writer(buffer, "long", value)

    assert encode_long(value) == buffer.getvalue()


frames = st.builds(
    Frame,
    camera_id=TEXT.filter(bool),
    line_id=TEXT,
    station_id=TEXT,
    frame_number=st.integers(min_value=0, max_value=2**63 - 1),
    captured_at=TIMESTAMPS,
    width=st.integers(min_value=1, max_value=2**31 - 1),
    height=st.integers(min_value=1, max_value=2**31 - 1),
    channels=st.sampled_from([1, 3]),
    encoding=st.sampled_from(ImageEncoding),
    image=st.binary(max_size=300),
    part_id=st.none() | TEXT,
    metadata=st.dictionaries(TEXT, TEXT, max_size=3),
)

HEADERS = st.builds(Header, key=TEXT, value=st.none() | st.binary(max_size=5))
dead_letters = st.builds(
    DeadLetter,
    reason=st.sampled_from(DeadLetterReason),
    error_class=TEXT,
    error_message=TEXT,
    source=st.builds(DeadLetterSource, topic=TEXT, partition=st.integers(-1, 100), offset=LONGS),
    original_key=st.none() | st.binary(max_size=20),
    original_value=st.none() | st.binary(max_size=300),
    original_headers=st.lists(
        st.builds(Header, key=TEXT, value=st.none() | st.binary(max_size=5)), max_size=3
    ),
    worker_id=TEXT,
    failed_at=TIMESTAMPS,
)


@settings(max_examples=100)
@given(frames)
def test_frame_encoding_is_identical_to_fastavro(frame: Frame) -> None:
    writer = RecordBodyWriter(shipped_schema("Frame"))

    assert writer.encode(b"HDR", frame.to_dict()) == b"HDR" + fastavro_bytes("Frame", frame.to_dict())


@settings(max_examples=100)
@given(dead_letters)
def test_dead_letter_encoding_with_optional_bytes_is_identical_to_fastavro(letter: DeadLetter) -> None:
    writer = RecordBodyWriter(shipped_schema("DeadLetter"))

    assert writer.encode(b"", letter.to_dict()) == fastavro_bytes("DeadLetter", letter.to_dict())


def test_bytes_first_last_and_reversed_union_order() -> None:
    schema = compile_schema(
        {
            "type": "record",
            "name": "Edges",
            "namespace": "test",
            "fields": [
                {"name": "head", "type": "bytes"},
                {"name": "middle", "type": "string"},
                {"name": "tail", "type": ["bytes", "null"]},
            ],
        }
    )
    writer = RecordBodyWriter(schema)
    for datum in (
        {"head": b"", "middle": "m", "tail": None},
        {"head": b"x" * 200, "middle": "", "tail": b"t"},
    ):
        expected = io.BytesIO()
        schemaless_writer(expected, schema.parsed, datum)

        assert writer.encode(b"", datum) == expected.getvalue()


@settings(max_examples=100)
@given(frames)
def test_any_valid_frame_round_trips_through_the_serde(frame: Frame) -> None:
    assert AvroRecordDeserializer(Frame)(AvroRecordSerializer(Frame)(frame)) == frame


@settings(max_examples=100)
@given(dead_letters)
def test_any_valid_dead_letter_round_trips_through_the_serde(letter: DeadLetter) -> None:
    assert AvroRecordDeserializer(DeadLetter)(AvroRecordSerializer(DeadLetter)(letter)) == letter
