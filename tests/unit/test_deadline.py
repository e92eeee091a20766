"""Decision deadlines per line (workers.deadline, workers.deadline_stage), driven by a fake clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from schemas.records import InspectionResult, Verdict
from tests.unit.golden.records import MODEL, golden_frame
from workers.deadline import AdmissionWindow, DeadlinePolicy, Ewma, ServiceEstimate
from workers.deadline_stage import DeadlineStage, FailSafeBuilder, undecoded
from workers.decode import DecodedFrame
from workers.metrics import WorkerMetrics
from workers.offsets import Ticket
from workers.verdicts import ResultBuilder

NOW = datetime(2026, 12, 3, 7, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ticket(offset: int) -> Ticket:
    return Ticket(topic="frames", partition=0, offset=offset, epoch=1)


def frame_on(line: str, captured_ms_ago: float, offset: int = 0) -> DecodedFrame:
    frame = dataclasses.replace(
        golden_frame(), line_id=line, captured_at=NOW - timedelta(milliseconds=captured_ms_ago)
    )
    return undecoded(ticket(offset), frame, NOW, None)


class _Served(ResultBuilder):
    def __init__(self) -> None:
        self.model_info = MODEL


# -- policy --------------------------------------------------------------------------------------------


def test_per_line_budget_overrides_the_default() -> None:
    policy = DeadlinePolicy(default_ms=200, lines={"line-fast": 80, "line-slow": 500})

    assert policy.budget_s("line-fast") == pytest.approx(0.08)
    assert policy.budget_s("other") == pytest.approx(0.2)
    assert policy.tightest_s() == pytest.approx(0.08)
    assert policy.remaining_s("line-slow", NOW - timedelta(milliseconds=450), NOW) == pytest.approx(0.05)


def test_a_line_without_budget_has_no_deadline() -> None:
    policy = DeadlinePolicy(default_ms=0, lines={"line-1": 150})

    assert policy.enabled
    assert policy.budget_s("line-2") is None
    assert policy.remaining_s("line-2", NOW - timedelta(hours=1), NOW) is None
    assert not DeadlinePolicy().enabled


@pytest.mark.parametrize(
    ("default", "lines", "fail_safe"), [(-1, {}, "reject"), (0, {"a": -5}, "reject"), (100, {}, "eject")]
)
def test_bad_policy_is_refused(default: float, lines: dict[str, float], fail_safe: str) -> None:
    with pytest.raises(ValueError):
        DeadlinePolicy(default_ms=default, lines=lines, fail_safe=fail_safe)  # type: ignore[arg-type]


# -- estimates -----------------------------------------------------------------------------------------


def test_ewma_upper_bound_follows_the_samples() -> None:
    ewma = Ewma(1.0)
    for _ in range(200):
        ewma.add(0.040)

    assert ewma.mean == pytest.approx(0.040)
    assert ewma.upper() == pytest.approx(0.040, abs=1e-6)
    ewma.add(0.100)
    assert ewma.upper() > 0.050


def test_service_estimate_scales_with_batch_size_above_half_a_batch() -> None:
    estimate = ServiceEstimate()
    for _ in range(100):
        estimate.observe_batch(32, 0.064)
        estimate.observe_output(0.010)

    assert estimate.model_s(32) == pytest.approx(0.064, rel=0.01)
    assert estimate.model_s(64) == pytest.approx(0.128, rel=0.01)
    assert estimate.model_s(1) == pytest.approx(0.032, rel=0.01)  # fixed costs: never below half a batch
    assert estimate.total_s(32) == pytest.approx(0.074, rel=0.01)


# -- admission window ----------------------------------------------------------------------------------


def test_window_bounds_the_wait_before_the_model_by_time() -> None:
    clock = FakeClock()
    window = AdmissionWindow(tightest_s=0.200, clock=clock)
    window.enter(ticket(1))
    clock.now += 0.020
    window.enter(ticket(2))

    assert window.wait_limit(service_s=0.050) == pytest.approx(0.075)  # half of what the budget leaves
    assert not window.hold(service_s=0.050)  # the oldest waited 20 ms
    clock.now += 0.060
    assert window.hold(service_s=0.050)  # 80 ms: more frames now would wait too long
    window.leave(ticket(1))
    assert window.hold(service_s=0.050)  # the next waited 60 ms: not yet below half the limit
    clock.now -= 0.030  # (as if it had come later)
    assert not window.hold(service_s=0.050)  # 30 ms < 37.5 ms: released
    window.leave(ticket(2))
    assert window.oldest_wait() is None and not window.hold(0.050)


def test_a_service_time_above_the_budget_holds_at_once() -> None:
    clock = FakeClock()
    window = AdmissionWindow(tightest_s=0.100, clock=clock)
    window.enter(ticket(1))

    assert window.wait_limit(service_s=0.150) == 0.0
    assert window.hold(service_s=0.150)


# -- the stage -----------------------------------------------------------------------------------------


def stage(policy: DeadlinePolicy) -> DeadlineStage:
    built = DeadlineStage(policy, WorkerMetrics(), "worker-t", max_batch_size=8)
    for _ in range(50):
        built.observe_batch(8, 0.040)
        built.estimate.observe_output(0.010)
    return built


def test_split_keeps_frames_that_make_it_and_gives_the_rest_up() -> None:
    checks = stage(DeadlinePolicy(default_ms=200, lines={"line-free": 0, "line-tight": 100}))
    frames = [
        frame_on("line-a", 100, 1),  # 100 ms left; half a usual batch (20 ms) + outputs (10 ms) needed
        frame_on("line-a", 180, 2),  # 20 ms left
        frame_on("line-tight", 80, 3),  # 20 ms left of 100
        frame_on("line-free", 10_000, 4),  # no deadline: always inspected
    ]

    keep, late = checks.split(frames, now=NOW)

    assert [f.ticket.offset for f in keep] == [1, 4]
    assert [f.ticket.offset for f in late] == [2, 3]


def test_late_on_the_record_alone() -> None:
    checks = stage(DeadlinePolicy(default_ms=200))

    assert checks.late(ticket(1), frame_on("line-a", 190).frame, now=NOW)
    assert not checks.late(ticket(2), frame_on("line-a", 20).frame, now=NOW)


@pytest.mark.parametrize(("fail_safe", "verdict"), [("reject", Verdict.DEFECT), ("pass", Verdict.OK)])
def test_fail_safe_result_carries_the_decision_and_the_flag(fail_safe: str, verdict: Verdict) -> None:
    policy = DeadlinePolicy(default_ms=200, fail_safe=fail_safe)  # type: ignore[arg-type]
    metrics = WorkerMetrics()
    checks = DeadlineStage(policy, metrics, "worker-t", max_batch_size=8)
    late = frame_on("line-a", 250, 7)

    item = checks.fail_safe([late], _Served())
    result, event = item.builder.build(late, item.predictions[0], NOW, 1)

    assert isinstance(item.builder, FailSafeBuilder)
    assert isinstance(result, InspectionResult)
    assert event is None
    assert result.deadline_missed and result.verdict is verdict
    assert result.metadata["fail_safe"] == fail_safe and result.metadata["late_ms"] == "50"
    assert (result.camera_id, result.frame_number, result.source.offset) == (
        late.frame.camera_id,
        late.frame.frame_number,
        7,
    )
    assert metrics.deadline_decided.labels("line-a", fail_safe)._value.get() == 1


def test_decision_histogram_by_line_and_outcome() -> None:
    metrics = WorkerMetrics()
    checks = DeadlineStage(DeadlinePolicy(default_ms=200), metrics, "worker-t", max_batch_size=8)
    metrics.on_result = checks.observe_result
    late = frame_on("line-a", 250, 7)
    item = checks.fail_safe([late], _Served())
    result, _ = item.builder.build(late, item.predictions[0], NOW, 1)

    metrics.count_result(result, NOW)
    metrics.count_result(dataclasses.replace(result, deadline_missed=False), NOW + timedelta(seconds=0.01))

    text = metrics.render().decode()
    assert 'lineguard_worker_line_decision_seconds_count{line="line-a",outcome="fail_safe"} 1.0' in text
    assert 'lineguard_worker_line_decision_seconds_count{line="line-a",outcome="inspected"} 1.0' in text


def test_admit_skips_frames_late_already() -> None:
    checks = stage(DeadlinePolicy(default_ms=200))
    now_ms = int(datetime.now(UTC).timestamp() * 1000)

    checks.admit(ticket(1), now_ms - 5_000)  # from a backlog: decided at once, never waits
    checks.admit(ticket(2), now_ms)

    assert len(checks.window) == 1
    waited = checks.window.oldest_wait()
    assert waited is not None and waited < 0.2


def test_an_unconfirmed_estimate_is_trusted_less_and_less_so_it_can_learn_again() -> None:
    clock = FakeClock()
    checks = DeadlineStage(DeadlinePolicy(default_ms=200), WorkerMetrics(), "worker-t", max_batch_size=8)
    checks.estimate = ServiceEstimate(usual_size=8, clock=clock)
    checks.estimate.observe_batch(8, 0.500)  # one very slow batch: every frame would look late after it
    frames = [frame_on("line-a", 50, 1), frame_on("line-a", 250, 2)]

    keep, late = checks.split(frames, now=NOW)
    assert (keep, [f.ticket.offset for f in late]) == ([], [1, 2])

    clock.now += 1.0  # no batch for a second: half the estimate (~0.5 s) is believed, still too slow
    assert checks.split(frames, now=NOW)[0] == []
    clock.now += 2.0  # three seconds: an eighth (~0.125 s)
    assert checks.estimate.trust() == 0.125
    keep, late = checks.split(frames, now=NOW)
    assert [f.ticket.offset for f in keep] == [1]  # 150 ms left: inspected, and its batch is observed
    assert [f.ticket.offset for f in late] == [2]  # past its deadline: fail-safe whatever the estimate
    assert not checks.late(ticket(1), frames[0].frame, now=NOW)
    checks.estimate.observe_batch(8, 0.040)
    assert checks.estimate.trust() == 1.0


def test_fail_safe_frames_leave_the_window_and_stale_entries_never_hold_for_ever() -> None:
    checks = stage(DeadlinePolicy(default_ms=200))
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    checks.admit(ticket(1), now_ms)
    checks.fail_safe([frame_on("line-a", 250, 1)], _Served())
    assert len(checks.window) == 0

    clock = FakeClock()
    window = AdmissionWindow(tightest_s=0.200, clock=clock)
    window.enter(ticket(2))
    clock.now += 0.190
    assert window.hold(0.050)
    clock.now += 0.250  # two budgets and still there (lost): dropped, the hold ends
    assert not window.hold(0.050)
    assert len(window) == 0


def test_frames_marked_late_in_the_decode_pool_are_decided_with_the_next_batch() -> None:
    checks = stage(DeadlinePolicy(default_ms=200))
    frames = [frame_on("line-a", 10, 1), frame_on("line-a", 10, 2)]
    checks.mark_late(ticket(2))  # e.g. its decode took the rest of its budget

    keep, late = checks.split(frames, now=NOW)

    assert [f.ticket.offset for f in keep] == [1]
    assert [f.ticket.offset for f in late] == [2]
    assert checks.split([frame_on("line-a", 10, 2)], now=NOW)[1] == []  # the mark is used once
