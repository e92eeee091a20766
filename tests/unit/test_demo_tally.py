"""The demo's bookkeeping: which results count, latency percentiles, rates, and verdict scoring."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lineguard.demo.tally import (
    GOOD,
    UNKNOWN_CLASS,
    DemoTally,
    Scored,
    predicted_class,
    score_verdicts,
    truth_class,
)
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def result(
    number: int,
    verdict: Verdict,
    scores: dict[str, float] | None = None,
    detections: tuple[tuple[str, float], ...] = (),
    camera: str = "cam",
) -> InspectionResult:
    now = datetime.now(UTC)
    return InspectionResult(
        camera_id=camera,
        line_id="line",
        station_id="station",
        frame_number=number,
        source=KafkaCoordinates(topic="frames", partition=0, offset=number),
        model=ModelInfo(name="m", version="1", task=Task.CLASSIFICATION),
        verdict=verdict,
        class_scores=tuple(ClassScore(label=k, score=v) for k, v in (scores or {}).items()),
        detections=tuple(
            Detection(label=label, score=score, box=Box(label=label, x_min=0, y_min=0, x_max=0.5, y_max=0.5))
            for label, score in detections
        ),
        captured_at=now,
        received_at=now,
        inferred_at=now,
        batch_size=1,
        worker_id="w",
    )


def test_predicted_class_follows_the_verdict() -> None:
    scores = {"good": 0.45, "scratch": 0.35, "dent": 0.2}
    # A defect verdict names the best defect class even when "good" has the top score (threshold < 0.5).
    assert predicted_class(result(1, Verdict.DEFECT, scores)) == "scratch"
    assert predicted_class(result(1, Verdict.OK, scores)) == GOOD
    assert predicted_class(result(1, Verdict.UNCERTAIN, scores)) == "scratch"
    assert predicted_class(result(1, Verdict.DEFECT, detections=(("spot", 0.4), ("crack", 0.9)))) == "crack"
    assert predicted_class(result(1, Verdict.DEFECT)) == UNKNOWN_CLASS


def test_truth_class_is_the_first_label_or_good() -> None:
    assert truth_class(()) == GOOD
    assert truth_class(("stain", "dent")) == "stain"


def test_results_of_other_runs_and_duplicates_are_not_counted() -> None:
    tally = DemoTally()
    tally.expect(("cam", 1), ())
    tally.expect(("cam", 2), ("scratch",))
    assert tally.add_result(result(1, Verdict.OK), 0.1)
    assert not tally.add_result(result(1, Verdict.OK), 0.1)  # at-least-once repeat
    assert not tally.add_result(result(99, Verdict.OK), 0.1)  # a frame this run never published
    snapshot = tally.snapshot()
    assert snapshot.results == 1
    assert snapshot.foreign_results == 1
    assert tally.duplicates == 1
    assert snapshot.outstanding == 1
    tally.add_dead_letter("CORRUPT_IMAGE")
    assert tally.settled == 2
    assert tally.snapshot().outstanding == 0
    assert tally.snapshot().dead_letters_by_reason == {"CORRUPT_IMAGE": 1}


def test_latency_percentiles_and_defects_by_class() -> None:
    tally = DemoTally()
    for number in range(1, 101):
        tally.expect(("cam", number), ("dent",) if number % 4 == 0 else ())
        verdict = Verdict.DEFECT if number % 4 == 0 else Verdict.OK
        tally.add_result(result(number, verdict, {"good": 0.3, "dent": 0.7}), latency_s=number / 1000)
    latency = tally.latency_ms()
    assert latency["p50"] == pytest.approx(50.5)
    assert latency["p99"] == pytest.approx(99.01)
    assert latency["max"] == pytest.approx(100.0)
    snapshot = tally.snapshot()
    assert snapshot.defects_by_class == {"dent": 25}
    assert snapshot.verdicts == {"OK": 75, "DEFECT": 25}


def test_rates_use_the_window_and_the_span_of_results() -> None:
    clock = FakeClock()
    tally = DemoTally(rate_window_s=5.0, clock=clock)
    for number in range(11):
        tally.expect(("cam", number), ())
        tally.add_result(result(number, Verdict.OK), 0.0)
        clock.now += 1.0  # one result a second for 11 s
    assert tally.throughput_fps() == pytest.approx(1.0)
    assert tally.snapshot().results_per_s == pytest.approx(1.0)  # 5 arrivals within the last 5 s
    clock.now += 60.0
    assert tally.snapshot().results_per_s == 0.0


def test_verdict_scores_count_uncertain_as_flagged() -> None:
    scored = [
        Scored("scratch", "scratch", Verdict.DEFECT, 0.0),  # TP
        Scored("dent", "scratch", Verdict.UNCERTAIN, 0.0),  # TP (flagged), wrong class
        Scored("crack", GOOD, Verdict.OK, 0.0),  # FN
        Scored(GOOD, "stain", Verdict.DEFECT, 0.0),  # FP
        Scored(GOOD, GOOD, Verdict.OK, 0.0),  # TN
        Scored(GOOD, GOOD, Verdict.OK, 0.0),  # TN
    ]
    scores = score_verdicts(scored, model_classes=("good", "scratch", "dent", "crack", "stain"))
    verdict = scores["verdict"]
    assert (verdict["true_positive"], verdict["false_positive"]) == (2, 1)
    assert (verdict["true_negative"], verdict["false_negative"]) == (2, 1)
    assert verdict["accuracy"] == pytest.approx(4 / 6)
    assert verdict["precision"] == pytest.approx(2 / 3)
    assert verdict["recall"] == pytest.approx(2 / 3)
    assert verdict["uncertain"] == 1
    classes = scores["classes"]
    assert classes["accuracy"] == pytest.approx(3 / 6)  # scratch, good, good
    assert classes["per_class"]["scratch"]["precision"] == pytest.approx(0.5)
    assert classes["per_class"]["dent"]["recall"] == 0.0
    assert list(classes["per_class"])[:2] == ["good", "scratch"]


def test_scores_of_nothing_are_zero_not_an_error() -> None:
    scores = score_verdicts([])
    assert scores["verdict"]["frames"] == 0
    assert scores["verdict"]["accuracy"] == 0.0
    assert scores["classes"] is None


def test_latency_segments_split_capture_to_result_by_the_results_timestamps() -> None:
    from dataclasses import replace
    from datetime import timedelta

    tally = DemoTally()
    captured = datetime(2026, 1, 1, tzinfo=UTC)
    for number, (to_worker_ms, in_worker_ms) in enumerate([(5, 30), (15, 40), (500, 60)]):
        tally.expect(("cam", number), ())
        timed = replace(
            result(number, Verdict.OK),
            captured_at=captured,
            received_at=captured + timedelta(milliseconds=to_worker_ms),
            inferred_at=captured + timedelta(milliseconds=to_worker_ms + in_worker_ms),
        )
        # the result record is stamped 2 ms after inference
        assert tally.add_result(timed, (to_worker_ms + in_worker_ms + 2) / 1000)

    segments = tally.latency_segments_ms()

    assert segments["to_worker"]["p50"] == pytest.approx(15)
    assert segments["to_worker"]["p99"] == pytest.approx(490.3)  # the slow frame's tail is in transit
    assert segments["in_worker"]["p50"] == pytest.approx(40)
    assert segments["to_output"]["p50"] == pytest.approx(2)
    assert segments["to_output"]["p99"] == pytest.approx(2)
