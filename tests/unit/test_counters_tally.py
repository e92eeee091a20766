"""The live counters' pure logic: what a result adds to its (line, window), and the in-process store's
once-per-result-id counting and max-only offsets (the contract the Redis store is tested against too)."""

from __future__ import annotations

from datetime import UTC, datetime

from quality.counters.store import InProcessStore
from quality.counters.tally import Tally, tally, window_start
from schemas.records import (
    Box,
    ClassScore,
    Detection,
    InspectionResult,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)

AT = datetime(2026, 3, 2, 8, 0, 59, tzinfo=UTC)


def _result(verdict: Verdict, frame: int = 1, **fields: object) -> InspectionResult:
    values: dict[str, object] = {
        "camera_id": "cam-1", "line_id": "L1", "station_id": "S1", "frame_number": frame,
        "source": KafkaCoordinates(topic="frames", partition=0, offset=frame),
        "model": ModelInfo(name="m", version="v3", task=Task.DETECTION), "verdict": verdict,
        "captured_at": AT, "received_at": AT, "inferred_at": AT, "batch_size": 1, "worker_id": "w",
    }  # fmt: skip
    values.update(fields)
    return InspectionResult(**values)  # type: ignore[arg-type]


def test_window_is_capture_time_floored() -> None:
    assert window_start(AT.timestamp(), 60) == int(datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp())
    assert window_start(AT.timestamp() + 1, 60) == int(datetime(2026, 3, 2, 8, 1, tzinfo=UTC).timestamp())
    assert window_start(3599.9, 3600) == 0


def test_defect_counts_its_class_from_the_first_detection() -> None:
    box = Box(label="dent", x_min=0.1, y_min=0.1, x_max=0.2, y_max=0.2)
    found = tally(_result(Verdict.DEFECT, detections=(Detection(label="dent", score=0.8, box=box),)), 60)
    assert found.fields == ("frames", "defect", "class:dent")
    assert found.result_id == "cam-1:1:v3"
    assert found.line_id == "L1"


def test_classifier_defect_takes_the_best_non_good_class() -> None:
    scores = (
        ClassScore(label="good", score=0.1),
        ClassScore(label="crack", score=0.6),
        ClassScore(label="stain", score=0.3),
    )
    assert tally(_result(Verdict.DEFECT, class_scores=scores), 60).fields[-1] == "class:crack"
    assert tally(_result(Verdict.DEFECT), 60).fields[-1] == "class:unclassified"


def test_ok_uncertain_and_deadline_missed() -> None:
    assert tally(_result(Verdict.OK), 60).fields == ("frames", "ok")
    assert tally(_result(Verdict.UNCERTAIN, deadline_missed=True), 60).fields == (
        "frames",
        "uncertain",
        "deadline_missed",
    )


def test_in_process_store_counts_each_result_once_and_raises_offsets_only() -> None:
    store = InProcessStore(window_s=60)
    batch = [
        Tally("L1", 0, "a", ("frames", "ok")),
        Tally("L1", 0, "b", ("frames", "defect", "class:dent")),
        Tally("L1", 60, "a", ("frames", "ok")),  # another window: a different result
        Tally("L1", 0, "a", ("frames", "ok")),  # a duplicate inside the batch
    ]
    assert store.apply(batch, {0: 4}, "g:t") == 3
    assert store.apply(batch, {0: 2, 1: 7}, "g:t") == 0  # the replay counts nothing
    assert store.offsets("g:t", [0, 1, 2]) == {0: 4, 1: 7}
    assert store.offsets("other:t", [0]) == {}
    first, second = store.recent("L1", 5)
    assert (first.window_start, first.frames, first.defects) == (60, 1, 0)
    assert (second.window_start, second.frames, second.defects, second.by_class()) == (0, 2, 1, {"dent": 1})
    assert store.lines() == ["L1"]
    assert len(store.recent("L1", 1)) == 1
