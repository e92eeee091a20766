"""InspectionResult v2 (``deadline_missed``, default false) next to v1 bytes still on the topics."""

from __future__ import annotations

import dataclasses

from schemas.catalog import previous_schemas, shipped_schema
from schemas.records import InspectionResult, Verdict
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from tests.unit.golden.records import golden_inspection_result
from tests.unit.golden.regenerate import GOLDEN_DIR

V1_BYTES = (GOLDEN_DIR / "InspectionResult.v1.bin").read_bytes()


def test_v1_schema_is_the_current_one_without_the_new_field() -> None:
    (v1,) = previous_schemas("InspectionResult")
    current = shipped_schema("InspectionResult")

    v1_fields = [f["name"] for f in v1.definition["fields"]]
    current_fields = [f["name"] for f in current.definition["fields"]]
    assert current_fields == [*v1_fields, "deadline_missed"]
    added = current.definition["fields"][-1]
    assert added["type"] == "boolean" and added["default"] is False
    assert V1_BYTES[2:10] == v1.fingerprint != current.fingerprint


def test_current_reader_reads_v1_bytes_with_the_default() -> None:
    result = AvroRecordDeserializer(InspectionResult)(V1_BYTES)

    assert result == golden_inspection_result()
    assert result is not None and result.deadline_missed is False


def test_v1_reader_reads_v2_bytes_and_ignores_the_new_field() -> None:
    (v1,) = previous_schemas("InspectionResult")
    missed = dataclasses.replace(golden_inspection_result(), verdict=Verdict.OK, deadline_missed=True)
    v2_bytes = AvroRecordSerializer(InspectionResult)(missed)
    reader = AvroRecordDeserializer(InspectionResult, reader_schema=v1)

    datum = reader.decode_dict(v2_bytes)

    assert "deadline_missed" not in datum
    assert datum["verdict"] == "OK" and datum["camera_id"] == "cam-07"


def test_deadline_missed_round_trips() -> None:
    missed = dataclasses.replace(golden_inspection_result(), deadline_missed=True)
    data = AvroRecordSerializer(InspectionResult)(missed)

    decoded = AvroRecordDeserializer(InspectionResult)(data)

    assert decoded == missed and decoded is not None and decoded.deadline_missed is True
    assert InspectionResult.from_dict(missed.to_dict()) == missed
