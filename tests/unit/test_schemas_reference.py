"""Cross-checks against the Apache Avro reference implementation (the ``avro`` package) and the spec.

The single-object header is checked with a CRC-64-AVRO written here from the specification, independent of
fastavro; the body is decoded (and encoded) by ``avro.io``, independent of fastavro too.
"""

from __future__ import annotations

import io
import json
from typing import Any

import avro.io
import avro.schema
import pytest

from schemas.catalog import shipped_schema, shipped_schemas
from schemas.framing import SINGLE_OBJECT_HEADER_LENGTH
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from tests.unit.golden.records import GOLDEN_RECORDS, claim_check_frame

SAMPLES = [*(build() for build in GOLDEN_RECORDS.values()), claim_check_frame()]

# From the Avro specification, "Schema Fingerprints": the 64-bit Rabin fingerprint of the canonical form.
CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_EMPTY if fp & 1 else 0)
        table.append(fp)
    return table


CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    fp = CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize(
    ("canonical", "little_endian_hex"),
    [('"int"', "8f5c393f1ad57572"), ('"long"', "b71df49344e154d0"), ('"bytes"', "651920c3da16c04f")],
)
def test_crc64_implementation_matches_published_vectors(canonical: str, little_endian_hex: str) -> None:
    # Vectors from the Avro implementations' own tests (Python FINGERPRINT_EXAMPLES, Rust, Go), written as the
    # fingerprint's little-endian bytes: the order a single-object header carries.
    assert crc64_avro(canonical.encode()).to_bytes(8, "little").hex() == little_endian_hex


def _reference_schema(name: str) -> avro.schema.Schema:
    return avro.schema.parse(shipped_schema(name).schema_str)


@pytest.mark.parametrize("name", sorted(shipped_schemas()))
def test_header_fingerprint_matches_an_independent_crc64_of_the_canonical_form(name: str) -> None:
    schema = shipped_schemas()[name]
    expected = crc64_avro(schema.canonical_form.encode("utf-8")).to_bytes(8, "little")

    assert schema.fingerprint == expected


@pytest.mark.parametrize("name", sorted(shipped_schemas()))
def test_canonical_form_agrees_with_the_reference_implementation(name: str) -> None:
    # avro 1.12's Python canonical form keeps a logical type's base as {"type":"long"} where the spec (and
    # Java) reduce it to "long"; apart from that the two must be identical.
    reference = _reference_schema(name).canonical_form.replace('{"type":"long"}', '"long"')

    assert shipped_schemas()[name].canonical_form == reference


@pytest.mark.parametrize("record", SAMPLES, ids=lambda record: type(record).__name__)
def test_reference_implementation_decodes_our_single_object_bytes(record: Any) -> None:
    data = AvroRecordSerializer(type(record))(record)
    assert data is not None
    header, body = data[:SINGLE_OBJECT_HEADER_LENGTH], data[SINGLE_OBJECT_HEADER_LENGTH:]
    canonical = shipped_schema(type(record).avro_name).canonical_form

    assert header == b"\xc3\x01" + crc64_avro(canonical.encode()).to_bytes(8, "little")
    reader = avro.io.DatumReader(_reference_schema(type(record).avro_name))
    datum = reader.read(avro.io.BinaryDecoder(io.BytesIO(body)))
    assert type(record).from_dict(datum) == record


@pytest.mark.parametrize("record", SAMPLES, ids=lambda record: type(record).__name__)
def test_we_decode_single_object_bytes_written_by_the_reference_implementation(record: Any) -> None:
    name = type(record).avro_name
    body = io.BytesIO()
    avro.io.DatumWriter(_reference_schema(name)).write(record.to_dict(), avro.io.BinaryEncoder(body))
    canonical = shipped_schema(name).canonical_form
    data = b"\xc3\x01" + crc64_avro(canonical.encode()).to_bytes(8, "little") + body.getvalue()

    assert AvroRecordDeserializer(type(record))(data) == record


def test_shipped_schemas_are_standalone_for_the_reference_implementation() -> None:
    # DefectEvent.avsc alone refers to types defined in other files; the compiled form inlines them.
    for schema in shipped_schemas().values():
        parsed = avro.schema.parse(json.dumps(dict(schema.definition)))
        assert isinstance(parsed, avro.schema.RecordSchema)
        assert parsed.fullname == schema.full_name
