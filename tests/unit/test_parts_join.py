"""The per-part join and its rules (pure, fixed clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from parts.joiner import PartJoiner
from parts.rules import JoinRule, LineRule, PartRules, decide, part_rules_from_dict
from parts.service import watermarks_with_retry
from schemas.errors import ConfigurationError
from schemas.parts import PartDecisionReason, PartOutcome, PartView
from schemas.records import Box, Detection, InspectionResult, KafkaCoordinates, ModelInfo, Task, Verdict

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CAMERAS = ("cam-a", "cam-b", "cam-c")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def result(
    camera: str, verdict: Verdict = Verdict.OK, station: str = "st-1", line: str = "line-1", frame: int = 1
) -> InspectionResult:
    detections: tuple[Detection, ...] = ()
    if verdict is Verdict.DEFECT:
        detections = (
            Detection(
                label="scratch", score=0.75, box=Box(label="scratch", x_min=0, y_min=0, x_max=1, y_max=1)
            ),
        )
    return InspectionResult(
        camera_id=camera,
        line_id=line,
        station_id=station,
        frame_number=frame,
        part_id="P-1",
        source=KafkaCoordinates(topic="t", partition=0, offset=frame),
        model=ModelInfo(name="m", version="1", task=Task.DETECTION),
        verdict=verdict,
        detections=detections,
        captured_at=T0,
        received_at=T0,
        inferred_at=T0,
        batch_size=1,
        worker_id="w",
    )


def three_view_rules(rule: str = "any-ng", **extra: object) -> PartRules:
    return part_rules_from_dict(
        {"lines": {"line-1": {"expected_views": list(CAMERAS), "rule": rule, "timeout_ms": 500, **extra}}}
    )


def test_three_views_give_one_decision_when_the_last_arrives() -> None:
    joiner = PartJoiner(three_view_rules(), clock=Clock())

    first = joiner.add("P-1", result("cam-a"))
    second = joiner.add("P-1", result("cam-b"))
    third = joiner.add("P-1", result("cam-c", Verdict.DEFECT))

    assert first.decisions == [] and second.decisions == []
    assert [key for key, _ in first.changelog] == ["P-1"]
    [decision] = third.decisions
    assert decision.decision is PartOutcome.REJECT
    assert decision.reason is PartDecisionReason.DEFECT
    assert decision.defect_label == "scratch"
    assert [view.camera_id for view in decision.views] == list(CAMERAS)


def test_a_part_missing_a_view_is_rejected_at_its_timeout_with_the_missing_camera() -> None:
    clock = Clock()
    joiner = PartJoiner(three_view_rules(), clock=clock)
    joiner.add("P-1", result("cam-a"))
    joiner.add("P-1", result("cam-b"))

    clock.now = T0 + timedelta(milliseconds=499)
    assert joiner.sweep().decisions == []
    clock.now = T0 + timedelta(milliseconds=500)
    [decision] = joiner.sweep().decisions

    assert decision.decision is PartOutcome.REJECT
    assert decision.reason is PartDecisionReason.MISSING_VIEWS
    assert decision.missing_views == ("cam-c",)
    assert joiner.counters.timed_out == 1


def test_late_and_duplicate_views_never_make_a_second_decision() -> None:
    joiner = PartJoiner(three_view_rules(), clock=Clock())
    joiner.add("P-1", result("cam-a"))
    joiner.add("P-1", result("cam-a"))  # a replayed view
    joiner.add("P-1", result("cam-b"))
    assert len(joiner.add("P-1", result("cam-c")).decisions) == 1

    assert joiner.add("P-1", result("cam-c")).decisions == []
    assert joiner.counters.duplicate_views == 1
    assert joiner.counters.late_views == 1


def test_state_restored_from_the_changelog_continues_the_join() -> None:
    clock = Clock()
    before = PartJoiner(three_view_rules(), clock=clock)
    log = before.add("P-1", result("cam-a")).changelog + before.add("P-1", result("cam-b")).changelog
    log += before.add("P-2", result("cam-a")).changelog
    log += before.add("P-2", result("cam-b")).changelog + before.add("P-2", result("cam-c")).changelog

    after = PartJoiner(three_view_rules(), clock=clock)
    after.restore(log)

    assert set(after.pending) == {"P-1"} and set(after.decided) == {"P-2"}
    assert after.add("P-2", result("cam-a")).decisions == []  # decided before the restart
    [decision] = after.add("P-1", result("cam-c")).decisions
    assert decision.part_id == "P-1" and decision.decision is PartOutcome.PASS


def test_a_tombstone_forgets_the_part() -> None:
    joiner = PartJoiner(three_view_rules(), clock=Clock())
    joiner.restore(
        [("P-1", PartJoiner(three_view_rules()).add("P-1", result("cam-a")).changelog[0][1]), ("P-1", None)]
    )
    assert joiner.pending == {} and joiner.decided == {}


def view(camera: str, verdict: Verdict, station: str = "st-1") -> PartView:
    return PartView(camera_id=camera, station_id=station, frame_number=1, verdict=verdict)


@pytest.mark.parametrize(
    ("rule", "verdicts", "outcome"),
    [
        (JoinRule.any_ng, (Verdict.OK, Verdict.OK, Verdict.OK), PartOutcome.PASS),
        (JoinRule.any_ng, (Verdict.OK, Verdict.DEFECT, Verdict.OK), PartOutcome.REJECT),
        (JoinRule.majority, (Verdict.OK, Verdict.DEFECT, Verdict.OK), PartOutcome.PASS),
        (JoinRule.majority, (Verdict.DEFECT, Verdict.DEFECT, Verdict.OK), PartOutcome.REJECT),
        (JoinRule.all_ok, (Verdict.OK, Verdict.UNCERTAIN, Verdict.OK), PartOutcome.REJECT),
    ],
)
def test_rules(rule: JoinRule, verdicts: tuple[Verdict, ...], outcome: PartOutcome) -> None:
    views = {camera: view(camera, verdict) for camera, verdict in zip(CAMERAS, verdicts, strict=True)}
    line_rule = LineRule(expected_cameras=frozenset(CAMERAS), expected_count=3, rule=rule)

    assert decide("P", "L", line_rule, views, T0, T0).decision is outcome


def test_uncertain_counts_as_ok_only_when_configured() -> None:
    views = {"cam-a": view("cam-a", Verdict.UNCERTAIN)}
    strict = LineRule(rule=JoinRule.any_ng)
    lenient = LineRule(rule=JoinRule.any_ng, uncertain_is_ng=False)

    assert decide("P", "L", strict, views, T0, T0).reason is PartDecisionReason.UNCERTAIN
    assert decide("P", "L", lenient, views, T0, T0).decision is PartOutcome.PASS


def test_per_station_rules_apply_to_each_station() -> None:
    line_rule = LineRule(
        expected_count=4, rule=JoinRule.per_station, station_rules={"st-2": JoinRule.majority}
    )
    # st-2 has one NG of three (majority passes it); st-1 is all OK.
    views = {
        "a": view("a", Verdict.OK, "st-1"),
        "b": view("b", Verdict.DEFECT, "st-2"),
        "c": view("c", Verdict.OK, "st-2"),
        "d": view("d", Verdict.OK, "st-2"),
    }
    assert decide("P", "L", line_rule, views, T0, T0).decision is PartOutcome.PASS

    views["a"] = view("a", Verdict.DEFECT, "st-1")  # st-1 uses any-ng
    assert decide("P", "L", line_rule, views, T0, T0).decision is PartOutcome.REJECT


@pytest.mark.parametrize(
    "config",
    [
        {"lines": {"l": {"rule": "sometimes"}}},
        {"lines": {"l": {"expected_views": 0}}},
        {"lines": {"l": {"timeout_ms": -1}}},
        {"lines": {"l": {"colour": "red"}}},
        {"lanes": {}},
    ],
)
def test_bad_rules_are_one_configuration_error(config: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        part_rules_from_dict(config)


class FlakyWatermarks:
    """A consumer whose first ``failures`` watermark requests fail as while a leader is elected."""

    def __init__(self, failures: int, code: int = KafkaError.NOT_LEADER_FOR_PARTITION) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float = 10) -> tuple[int, int]:
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(self.code))
        return 0, 42


def test_changelog_watermarks_retry_a_leader_election_with_a_bounded_backoff() -> None:
    slept: list[float] = []
    reader = FlakyWatermarks(failures=5)
    marks = watermarks_with_retry(
        reader,
        TopicPartition("changelog", 0),
        attempts=8,
        backoff_s=0.1,
        max_backoff_s=1.0,
        sleep=slept.append,
    )
    assert marks == (0, 42)
    assert reader.calls == 6
    assert slept == [0.1, 0.2, 0.4, 0.8, 1.0]


def test_changelog_watermarks_give_up_after_the_last_attempt() -> None:
    reader = FlakyWatermarks(failures=10)
    with pytest.raises(KafkaException):
        watermarks_with_retry(reader, TopicPartition("changelog", 0), attempts=3, sleep=lambda _: None)
    assert reader.calls == 3


def test_changelog_watermarks_do_not_retry_a_permanent_error() -> None:
    reader = FlakyWatermarks(failures=1, code=KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        watermarks_with_retry(reader, TopicPartition("changelog", 0), sleep=lambda _: None)
    assert reader.calls == 1
