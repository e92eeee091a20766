"""The Avro serializer and deserializer without a registry: single-object encoding, evolution, bad input."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_writer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas.avro_writer import encode_long
from schemas.catalog import CompiledSchema, compile_schema, shipped_schema
from schemas.errors import SerializationError, UnknownSchemaError
from schemas.framing import confluent_header, single_object_header
from schemas.records import Box, DeadLetter, Frame, InspectionResult
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from tests.unit.golden.records import GOLDEN_RECORDS, claim_check_frame, golden_frame

CTX = SerializationContext("lineguard.frames", MessageField.VALUE)
ALL_SAMPLES = [*(build() for build in GOLDEN_RECORDS.values()), claim_check_frame()]
FRAME_BYTES = AvroRecordSerializer(Frame)(golden_frame())
assert FRAME_BYTES is not None


def frame_v2() -> CompiledSchema:
    """Frame v2: the shipped Frame plus an optional ``exposure_us`` (how a schema is allowed to grow)."""
    definition = copy.deepcopy(dict(shipped_schema("Frame").definition))
    definition["fields"].append(
        {"name": "exposure_us", "type": ["null", "long"], "default": None, "doc": "Exposure time."}
    )
    return compile_schema(definition)


def encode_single_object(schema: CompiledSchema, datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(single_object_header(schema.fingerprint))
    schemaless_writer(buffer, schema.parsed, datum)
    return buffer.getvalue()


# -- round trips ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("record", ALL_SAMPLES, ids=lambda record: type(record).__name__)
def test_round_trip_of_every_record_type(record: Any) -> None:
    data = AvroRecordSerializer(type(record))(record, CTX)

    assert data is not None
    assert AvroRecordDeserializer(type(record))(data, CTX) == record


def test_single_object_header_carries_the_shipped_fingerprint() -> None:
    assert FRAME_BYTES[:10] == b"\xc3\x01" + shipped_schema("Frame").fingerprint


def test_context_is_optional_without_registry() -> None:
    assert AvroRecordDeserializer(Frame)(AvroRecordSerializer(Frame)(golden_frame())) == golden_frame()


def test_none_stays_none_in_both_directions() -> None:
    assert AvroRecordSerializer(Frame)(None, CTX) is None
    assert AvroRecordDeserializer(Frame)(None, CTX) is None


def test_serializer_refuses_another_record_type() -> None:
    with pytest.raises(SerializationError, match="cannot serialize InspectionResult"):
        AvroRecordSerializer(Frame)(GOLDEN_RECORDS["InspectionResult"](), CTX)


def test_serde_needs_a_top_level_record_class() -> None:
    with pytest.raises(TypeError, match="not a lineguard record class"):
        AvroRecordSerializer(dict)  # type: ignore[type-var]
    with pytest.raises(SerializationError, match="no shipped Avro schema named"):
        AvroRecordDeserializer(Box)


def test_reading_bytes_of_another_record_type_is_an_unknown_schema() -> None:
    letter = AvroRecordSerializer(DeadLetter)(GOLDEN_RECORDS["DeadLetter"]())
    assert letter is not None

    with pytest.raises(UnknownSchemaError, match="unknown writer schema fingerprint"):
        AvroRecordDeserializer(Frame)(letter)


def test_decode_dict_returns_the_avro_datum() -> None:
    datum = AvroRecordDeserializer(Frame).decode_dict(FRAME_BYTES)

    assert datum == golden_frame().to_dict()


def test_large_frame_round_trips() -> None:
    import dataclasses
    import os

    frame = dataclasses.replace(golden_frame(), image=os.urandom(3 * 1024 * 1024))

    assert AvroRecordDeserializer(Frame)(AvroRecordSerializer(Frame)(frame)) == frame


# -- evolution -----------------------------------------------------------------------------------------------


def test_v1_reader_reads_v2_bytes_once_the_v2_writer_schema_is_registered() -> None:
    v2 = frame_v2()
    v2_bytes = encode_single_object(v2, {**golden_frame().to_dict(), "exposure_us": 800})
    reader = AvroRecordDeserializer(Frame)

    with pytest.raises(UnknownSchemaError, match=v2.fingerprint.hex()):
        reader(v2_bytes)
    reader.register_writer_schema(v2)

    assert reader(v2_bytes) == golden_frame()


def test_v2_reader_reads_v1_bytes_with_the_default_for_the_new_field() -> None:
    reader = AvroRecordDeserializer(Frame, reader_schema=frame_v2())

    datum = reader.decode_dict(FRAME_BYTES)

    assert datum["exposure_us"] is None
    assert reader(FRAME_BYTES) == golden_frame()


def test_v2_reader_reads_v2_bytes_with_the_new_field() -> None:
    v2 = frame_v2()
    v2_bytes = encode_single_object(v2, {**golden_frame().to_dict(), "exposure_us": 800})

    assert AvroRecordDeserializer(Frame, reader_schema=v2).decode_dict(v2_bytes)["exposure_us"] == 800


def test_enum_symbol_unknown_to_the_reader_resolves_to_the_enum_default() -> None:
    definition = copy.deepcopy(dict(shipped_schema("Frame").definition))
    encoding = next(field for field in definition["fields"] if field["name"] == "encoding")
    encoding["type"]["symbols"].append("WEBP")
    v2 = compile_schema(definition)
    reader = AvroRecordDeserializer(Frame)
    reader.register_writer_schema(v2)

    frame = reader(encode_single_object(v2, {**golden_frame().to_dict(), "encoding": "WEBP"}))

    assert frame is not None
    assert frame.encoding == "UNKNOWN"


def test_register_writer_schema_accepts_json_text() -> None:
    reader = AvroRecordDeserializer(Frame)

    compiled = reader.register_writer_schema(frame_v2().schema_str)

    assert compiled.fingerprint == frame_v2().fingerprint


def test_incompatible_writer_schema_is_a_serialization_error() -> None:
    definition = copy.deepcopy(dict(shipped_schema("Frame").definition))
    definition["fields"] = [field for field in definition["fields"] if field["name"] != "line_id"]
    without_line = compile_schema(definition)
    reader = AvroRecordDeserializer(Frame)
    reader.register_writer_schema(without_line)
    data = encode_single_object(without_line, golden_frame().to_dict())

    with pytest.raises(SerializationError, match="cannot decode"):
        reader(data)


# -- bad input -----------------------------------------------------------------------------------------------

READER = AvroRecordDeserializer(Frame)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", SerializationError, "empty message"),
        (b"\x7b\x22json\x22: 1}", SerializationError, "neither|expected c301"),
        (b"\xc3\x02" + FRAME_BYTES[2:], SerializationError, "expected c301"),
        (b"\xc3\x01\x00\x01", SerializationError, "truncated Avro single-object"),
        (b"\x00\x00\x00", SerializationError, "truncated Confluent-framed"),
        (b"\xc3\x01" + bytes(8) + FRAME_BYTES[10:], UnknownSchemaError, "unknown writer schema fingerprint"),
        (confluent_header(7) + FRAME_BYTES[10:], UnknownSchemaError, "no registry"),
        (FRAME_BYTES + b"\x00", SerializationError, "1 bytes left over"),
        (FRAME_BYTES[:-1], SerializationError, "cannot decode"),
    ],
    ids=[
        "empty",
        "json",
        "wrong-magic",
        "short-header",
        "short-confluent-header",
        "unknown-fingerprint",
        "confluent-without-registry",
        "trailing-byte",
        "truncated-body",
    ],
)
def test_bad_input_raises_the_right_error(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        READER(data)


def test_huge_length_prefix_fails_fast_without_allocating_it() -> None:
    # A corrupt length must not make the reader reserve a terabyte before noticing the data is short.
    data = FRAME_BYTES[:10] + encode_long(2**40) + b"cam"

    with pytest.raises(SerializationError, match="EOFError"):
        READER(data)


def test_body_that_breaks_a_record_invariant_is_a_serialization_error() -> None:
    datum = {**golden_frame().to_dict(), "channels": 4}
    data = encode_single_object(shipped_schema("Frame"), datum)

    with pytest.raises(SerializationError, match="channels must be 1"):
        READER(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_another_error(data: bytes) -> None:
    with pytest.raises(SerializationError):
        READER(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
@example(FRAME_BYTES[10:])  # a body that does decode: the success branch is exercised on every run
def test_random_body_behind_a_valid_header_raises_serialization_error(body: bytes) -> None:
    # A random body is almost always refused with a SerializationError that says why. If one does decode,
    # it must be a valid Frame that survives its own round trip: never a half-built record.
    try:
        frame = READER(FRAME_BYTES[:10] + body)
    except SerializationError as exc:
        assert str(exc)
        return
    assert isinstance(frame, Frame)
    assert READER(AvroRecordSerializer(Frame)(frame)) == frame


@given(st.integers(min_value=0, max_value=len(FRAME_BYTES) - 1))
def test_every_truncation_raises_serialization_error(length: int) -> None:
    with pytest.raises(SerializationError):
        READER(FRAME_BYTES[:length])


@settings(max_examples=500)
@given(st.integers(min_value=0, max_value=len(FRAME_BYTES) * 8 - 1))
def test_bit_flips_are_detected_or_decode_to_a_valid_frame(bit: int) -> None:
    # Avro carries no checksum: a flip inside image bytes or a string decodes to a different, valid frame.
    # What must hold: a flip in the header is always caught, and nothing but SerializationError escapes.
    flipped = bytearray(FRAME_BYTES)
    flipped[bit // 8] ^= 1 << (bit % 8)
    if bit < 10 * 8:
        with pytest.raises(SerializationError):
            READER(bytes(flipped))
        return
    try:
        frame = READER(bytes(flipped))
    except SerializationError:
        return
    assert isinstance(frame, Frame)


def test_inspection_result_deserializer_rejects_frame_bytes() -> None:
    with pytest.raises(UnknownSchemaError):
        AvroRecordDeserializer(InspectionResult)(FRAME_BYTES)
