"""Fixed sample records, one per shipped top-level schema, used for golden bytes and round trips.

Every value is fixed (no clock, no randomness) and every float is exactly representable as an Avro 32-bit
``float`` (0.25, 0.5, ...), so a record survives a round trip with ``==``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from schemas.parts import PartDecision, PartDecisionReason, PartOutcome, PartView
from schemas.records import (
    Box,
    ClassScore,
    DeadLetter,
    DeadLetterReason,
    DeadLetterSource,
    DefectEvent,
    DefectRegion,
    Detection,
    Frame,
    GroundTruth,
    Header,
    ImageEncoding,
    ImageReference,
    InspectionResult,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)

CAPTURED_AT = datetime(2026, 11, 28, 15, 16, 0, 123456, tzinfo=UTC)
RECEIVED_AT = datetime(2026, 11, 28, 15, 16, 0, 150000, tzinfo=UTC)
INFERRED_AT = datetime(2026, 11, 28, 15, 16, 0, 180250, tzinfo=UTC)

SCRATCH_BOX = Box(label="scratch", x_min=0.125, y_min=0.25, x_max=0.5, y_max=0.75)
MODEL = ModelInfo(name="surface-detector", version="1.2.0", task=Task.DETECTION)
FRAME_COORDINATES = KafkaCoordinates(topic="lineguard.frames", partition=2, offset=41)


def golden_frame() -> Frame:
    """A frame with every optional field set but the claim-check reference (which excludes inline bytes)."""
    return Frame(
        camera_id="cam-07",
        line_id="line-2",
        station_id="press-4",
        frame_number=1_000_001,
        captured_at=CAPTURED_AT,
        width=64,
        height=48,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=bytes(range(256)) * 2,
        part_id="P-000123",
        ground_truth=GroundTruth(labels=("scratch",), boxes=(SCRATCH_BOX,), mask_png=b"\x89PNG-mask"),
        metadata={"exposure_us": "800", "lot": "L-17"},
    )


def claim_check_frame() -> Frame:
    """A frame stored by reference: empty inline image, no ground truth, empty metadata."""
    return Frame(
        camera_id="cam-07",
        line_id="line-2",
        station_id="press-4",
        frame_number=1_000_002,
        captured_at=CAPTURED_AT,
        width=4096,
        height=3072,
        channels=1,
        encoding=ImageEncoding.PNG,
        image=b"",
        image_ref=ImageReference(
            uri="gridfs://lineguard/frames/cam-07-1000002",
            sha256="ab" * 32,
            size_bytes=12_345_678,
        ),
    )


def golden_inspection_result() -> InspectionResult:
    return InspectionResult(
        camera_id="cam-07",
        line_id="line-2",
        station_id="press-4",
        frame_number=1_000_001,
        part_id="P-000123",
        source=FRAME_COORDINATES,
        model=MODEL,
        verdict=Verdict.DEFECT,
        class_scores=(ClassScore(label="good", score=0.125), ClassScore(label="scratch", score=0.875)),
        detections=(Detection(label="scratch", score=0.875, box=SCRATCH_BOX),),
        anomaly_score=3.5,
        anomaly_mask_png=b"\x89PNG-anomaly",
        captured_at=CAPTURED_AT,
        received_at=RECEIVED_AT,
        inferred_at=INFERRED_AT,
        batch_size=16,
        worker_id="worker-a",
        metadata={"backend": "onnxruntime"},
    )


def golden_defect_event() -> DefectEvent:
    return DefectEvent(
        event_id="cam-07:1000001:1.2.0",
        camera_id="cam-07",
        line_id="line-2",
        station_id="press-4",
        frame_number=1_000_001,
        part_id="P-000123",
        captured_at=CAPTURED_AT,
        detected_at=INFERRED_AT,
        model=MODEL,
        verdict=Verdict.DEFECT,
        regions=(
            DefectRegion(label="scratch", score=0.875, box=SCRATCH_BOX, crop_jpeg=b"\xff\xd8crop\xff\xd9"),
        ),
        anomaly_score=None,
        source=FRAME_COORDINATES,
    )


def golden_dead_letter() -> DeadLetter:
    return DeadLetter(
        reason=DeadLetterReason.CORRUPT_IMAGE,
        error_class="CorruptImageError",
        error_message="JPEG stream ends early",
        source=DeadLetterSource(
            topic="lineguard.frames", partition=0, offset=7, timestamp_ms=1_795_878_960_150
        ),
        original_key=b"cam-07",
        original_value=b"\xc3\x01not-really-a-frame",
        original_headers=(Header(key="trace-id", value=b"00-abc-01"), Header(key="empty", value=None)),
        worker_id="worker-a",
        failed_at=INFERRED_AT,
    )


def golden_part_decision() -> PartDecision:
    """A part rejected because one of its three cameras never reported."""
    return PartDecision(
        part_id="P-000123",
        line_id="line-2",
        decision=PartOutcome.REJECT,
        reason=PartDecisionReason.MISSING_VIEWS,
        rule="any-ng",
        defect_label=None,
        views=(
            PartView(camera_id="cam-07", station_id="press-4", frame_number=1_000_001, verdict=Verdict.OK),
            PartView(
                camera_id="cam-08",
                station_id="press-4",
                frame_number=2_000_001,
                verdict=Verdict.DEFECT,
                label="scratch",
                score=0.875,
            ),
        ),
        missing_views=("cam-09",),
        first_captured_at=CAPTURED_AT,
        decided_at=INFERRED_AT,
        metadata={"expected_views": "3"},
    )


#: Golden file stem -> builder. One per shipped top-level schema.
GOLDEN_RECORDS: dict[str, Callable[[], Any]] = {
    "Frame": golden_frame,
    "InspectionResult": golden_inspection_result,
    "DefectEvent": golden_defect_event,
    "DeadLetter": golden_dead_letter,
    "PartDecision": golden_part_decision,
}
