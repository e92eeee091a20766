"""Golden bytes: the encoding of a fixed record per schema must not change unless the contract does.

If one of these fails after an intended schema change, regenerate with
``.venv/bin/python -m tests.unit.golden.regenerate`` and review the diff; an unintended failure means the wire
format changed under the readers' feet (a field order, a type, a library upgrade).
"""

from __future__ import annotations

import pytest

from schemas.catalog import shipped_schema
from schemas.framing import SINGLE_OBJECT_MAGIC
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from tests.unit.golden.records import GOLDEN_RECORDS
from tests.unit.golden.regenerate import golden_path

STEMS = sorted(GOLDEN_RECORDS)


@pytest.mark.parametrize("stem", STEMS)
def test_encoding_matches_golden_bytes(stem: str) -> None:
    record = GOLDEN_RECORDS[stem]()
    golden = golden_path(stem).read_bytes()

    assert AvroRecordSerializer(type(record))(record) == golden


@pytest.mark.parametrize("stem", STEMS)
def test_golden_bytes_decode_to_the_golden_record(stem: str) -> None:
    record = GOLDEN_RECORDS[stem]()

    assert AvroRecordDeserializer(type(record))(golden_path(stem).read_bytes()) == record


@pytest.mark.parametrize("stem", STEMS)
def test_golden_header_names_the_shipped_schema(stem: str) -> None:
    golden = golden_path(stem).read_bytes()

    assert golden[:2] == SINGLE_OBJECT_MAGIC
    assert golden[2:10] == shipped_schema(stem).fingerprint


def test_every_shipped_schema_has_a_golden_file() -> None:
    from schemas.catalog import shipped_schemas

    assert sorted(schema.name for schema in shipped_schemas().values()) == STEMS
