"""Typed records: invariants on construction, normalization, and to_dict/from_dict round trips."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas.errors import SerializationError
from schemas.records import (
    Box,
    ClassScore,
    DeadLetter,
    DefectEvent,
    Detection,
    Frame,
    GroundTruth,
    ImageEncoding,
    ImageReference,
    InspectionResult,
    InvalidRecordError,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)
from tests.unit.golden.records import (
    CAPTURED_AT,
    GOLDEN_RECORDS,
    claim_check_frame,
    golden_frame,
    golden_inspection_result,
)

ALL_SAMPLES = [*(build() for build in GOLDEN_RECORDS.values()), claim_check_frame()]


@pytest.mark.parametrize("record", ALL_SAMPLES, ids=lambda record: type(record).__name__)
def test_to_dict_from_dict_round_trip(record: object) -> None:
    assert type(record).from_dict(record.to_dict()) == record  # type: ignore[attr-defined]


def test_from_dict_fills_avro_defaults_for_missing_optional_fields() -> None:
    data = golden_frame().to_dict()
    for optional in ("image_ref", "part_id", "ground_truth", "metadata"):
        del data[optional]

    frame = Frame.from_dict(data)

    assert (frame.image_ref, frame.part_id, frame.ground_truth) == (None, None, None)
    assert dict(frame.metadata) == {}


def test_from_dict_accepts_raw_timestamp_micros() -> None:
    data = golden_frame().to_dict()
    data["captured_at"] = 1_795_878_960_123_456  # 2026-11-28T15:16:00.123456Z

    assert Frame.from_dict(data).captured_at == CAPTURED_AT


def test_enums_are_strings_with_the_avro_symbols() -> None:
    assert ImageEncoding.JPEG == "JPEG"
    assert Verdict("UNCERTAIN") is Verdict.UNCERTAIN
    assert golden_frame().to_dict()["encoding"] == "JPEG"


def test_enum_given_as_symbol_is_normalized_to_the_enum() -> None:
    model = ModelInfo(name="m", version="1", task="ANOMALY")  # type: ignore[arg-type]

    assert model.task is Task.ANOMALY


def test_unknown_enum_symbol_is_refused() -> None:
    with pytest.raises(InvalidRecordError, match="task must be one of UNKNOWN, CLASSIFICATION"):
        ModelInfo(name="m", version="1", task="SEGMENTS")  # type: ignore[arg-type]


def test_task_short_name_is_the_same_task_and_the_wire_carries_the_avro_symbol() -> None:
    # One Task for models (model.json says "segment") and records (the Avro symbol SEGMENTATION).
    model = ModelInfo(name="m", version="1", task=Task("segment"))

    assert model.task is Task.SEGMENTATION is Task("SEGMENTATION")
    assert model.to_dict()["task"] == "SEGMENTATION"
    assert ModelInfo.from_dict(model.to_dict()) == model


def test_aware_timestamp_in_another_zone_is_converted_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    frame = dataclasses.replace(golden_frame(), captured_at=CAPTURED_AT.astimezone(cest))

    assert frame.captured_at.tzinfo is UTC
    assert frame.captured_at == CAPTURED_AT


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(InvalidRecordError, match="timezone-aware"):
        dataclasses.replace(golden_frame(), captured_at=datetime(2026, 1, 1))


def test_invalid_record_error_is_both_value_and_serialization_error() -> None:
    assert issubclass(InvalidRecordError, ValueError)
    assert issubclass(InvalidRecordError, SerializationError)


def test_sequences_are_stored_as_tuples() -> None:
    truth = GroundTruth(labels=["scratch"], boxes=[Box(label="scratch", x_min=0, y_min=0, x_max=1, y_max=1)])

    assert isinstance(truth.labels, tuple)
    assert isinstance(truth.boxes, tuple)


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        golden_frame().frame_number = 3  # type: ignore[misc]


def test_frame_identity_is_camera_and_number() -> None:
    assert golden_frame().identity == ("cam-07", 1_000_001)
    assert golden_inspection_result().identity == ("cam-07", 1_000_001)


@pytest.mark.parametrize(
    ("corners", "message"),
    [
        ((-0.1, 0.0, 0.5, 0.5), "x_min must be in"),
        ((0.0, 0.0, 1.5, 0.5), "x_max must be in"),
        ((0.0, float("nan"), 0.5, 0.5), "y_min must be in"),
        ((0.6, 0.0, 0.5, 0.5), "past max corner"),
        ((0.0, 0.7, 0.5, 0.5), "past max corner"),
    ],
)
def test_box_corners_must_be_normalized_and_ordered(corners: tuple[float, ...], message: str) -> None:
    x_min, y_min, x_max, y_max = corners
    with pytest.raises(InvalidRecordError, match=message):
        Box(label="dent", x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max)


def test_degenerate_box_of_zero_area_is_allowed() -> None:
    assert Box(label="spot", x_min=0.5, y_min=0.5, x_max=0.5, y_max=0.5).x_max == 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": 0}, "width and height must be > 0"),
        ({"height": -1}, "width and height must be > 0"),
        ({"channels": 4}, "channels must be 1"),
        ({"frame_number": -1}, "frame_number must be >= 0"),
        ({"camera_id": ""}, "camera_id must not be empty"),
        ({"encoding": "GIF"}, "encoding must be one of"),
        (
            {"image_ref": ImageReference(uri="gridfs://x", sha256="0" * 64, size_bytes=1)},
            "image must be empty when image_ref is set",
        ),
    ],
)
def test_frame_invariants(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        dataclasses.replace(golden_frame(), **change)


def test_frame_without_image_and_without_reference_is_representable() -> None:
    # A worker must be able to read it and dead-letter it as EMPTY_IMAGE.
    assert dataclasses.replace(golden_frame(), image=b"").image == b""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "abc"}, "sha256 must be 64 hex digits"),
        ({"size_bytes": -5}, "size_bytes must be >= 0"),
        ({"uri": ""}, "uri must not be empty"),
    ],
)
def test_image_reference_invariants(change: dict[str, Any], message: str) -> None:
    reference = ImageReference(uri="gridfs://x", sha256="0" * 64, size_bytes=1)
    with pytest.raises(InvalidRecordError, match=message):
        dataclasses.replace(reference, **change)


@pytest.mark.parametrize("score", [-0.01, 1.01, float("nan")])
def test_scores_must_be_in_unit_interval(score: float) -> None:
    box = Box(label="x", x_min=0, y_min=0, x_max=1, y_max=1)
    with pytest.raises(InvalidRecordError, match="score must be in"):
        ClassScore(label="x", score=score)
    with pytest.raises(InvalidRecordError, match="score must be in"):
        Detection(label="x", score=score, box=box)


def test_inspection_result_invariants() -> None:
    result = golden_inspection_result()
    with pytest.raises(InvalidRecordError, match="batch_size must be >= 1"):
        dataclasses.replace(result, batch_size=0)
    with pytest.raises(InvalidRecordError, match="partition and offset must be >= 0"):
        KafkaCoordinates(topic="t", partition=-1, offset=0)


def test_defect_event_and_dead_letter_normalize_enums_and_sequences() -> None:
    event = GOLDEN_RECORDS["DefectEvent"]()
    letter = GOLDEN_RECORDS["DeadLetter"]()
    assert isinstance(event, DefectEvent)
    assert isinstance(letter, DeadLetter)

    rebuilt_event = dataclasses.replace(event, verdict="UNCERTAIN", regions=list(event.regions))  # type: ignore[arg-type]
    rebuilt_letter = dataclasses.replace(letter, reason="OVERSIZE", original_headers=[])  # type: ignore[arg-type]

    assert rebuilt_event.verdict is Verdict.UNCERTAIN
    assert isinstance(rebuilt_event.regions, tuple)
    assert rebuilt_letter.reason == "OVERSIZE"
    assert rebuilt_letter.original_headers == ()


def test_inspection_result_of_a_good_part_round_trips_with_empty_collections() -> None:
    result = dataclasses.replace(
        golden_inspection_result(),
        verdict=Verdict.OK,
        part_id=None,
        class_scores=(),
        detections=(),
        anomaly_score=None,
        anomaly_mask_png=None,
        metadata={},
    )

    assert InspectionResult.from_dict(result.to_dict()) == result
