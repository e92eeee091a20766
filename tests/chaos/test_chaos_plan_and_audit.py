"""The pure parts of the fault harness: the seeded schedule and the audit arithmetic."""

from __future__ import annotations

import itertools
from typing import Any

from chaos.audit import audit, percentile
from chaos.faults import FaultKind, FaultPlan, planned_duration_s, schedule

PLAN = FaultPlan(worker_kills=20, broker_restarts=1, mongo_outages=1, mongo_outage_s=30, producer_restarts=2)


def test_schedule_is_seeded_complete_and_ordered() -> None:
    duration = planned_duration_s(3000, 10, PLAN)
    faults = schedule(PLAN, duration, workers=2, seed=7)
    assert faults == schedule(PLAN, duration, workers=2, seed=7)
    assert faults != schedule(PLAN, duration, workers=2, seed=8)
    kinds = [fault.kind for fault in faults]
    assert kinds.count(FaultKind.worker_kill) == 20
    assert kinds.count(FaultKind.broker_restart) == 1 and kinds.count(FaultKind.mongo_outage) == 1
    assert kinds.count(FaultKind.producer_restart) == 2
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)
    assert all(0 <= f.at_s < duration for f in faults)
    assert {f.target for f in faults if f.kind is FaultKind.worker_kill} == {0, 1}


def test_long_faults_get_windows_of_their_own() -> None:
    plan = FaultPlan(
        worker_kills=0, broker_restarts=2, mongo_outages=2, mongo_outage_s=30, producer_restarts=0
    )
    duration = planned_duration_s(100, 10, plan)
    starts = sorted(f.at_s for f in schedule(plan, duration, workers=1, seed=3))
    assert duration >= 4 * 30
    assert all(later - earlier >= duration / 4 * 0.5 for earlier, later in itertools.pairwise(starts))


def test_audit_counts_losses_duplicates_and_stray_dead_letters() -> None:
    expected = [("c", n) for n in range(5)]
    figures = audit(
        expected=expected,
        documents=[("c", 0, "v1"), ("c", 1, "v1"), ("c", 1, "v1"), ("c", 2, "v1"), ("c", 3, "v1")],
        results=[("c", 0), ("c", 0), ("c", 0), ("c", 1), ("c", 2), ("c", 4), ("x", 9)],
        dead_letter_sources=[(0, 5), (1, 7)],
        injected_bad=[(0, 5), (2, 1)],
    )
    assert figures.lost == 2  # frame 3 has no result, frame 4 no document
    assert (figures.missing_results, figures.missing_documents) == (1, 1)
    assert figures.duplicate_documents == 1
    assert figures.duplicate_results == 2 and figures.frames_with_duplicate_results == 1
    assert figures.unexpected_results == 1
    assert (figures.spurious_dead_letters, figures.missing_dead_letters) == (1, 1)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.99) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(v) for v in range(1, 101)], 0.99) == 99.0
    assert percentile([5.0], 0.99) == 5.0


def test_duplicates_are_counted_from_raw_reads_not_sets() -> None:
    figures = audit(
        expected=[("c", 0), ("c", 1)],
        # Two documents for frame 1 under different _ids (another version): counted per frame.
        documents=[("c", 0, "v1"), ("c", 1, "v1"), ("c", 1, "v2")],
        results=[("c", 0), ("c", 1)],
        dead_letter_sources=[(0, 5), (0, 5), (0, 5)],  # one poison record dead-lettered three times
        injected_bad=[(0, 5)],
    )
    assert figures.duplicate_documents == 1
    assert figures.duplicate_dead_letters == 2
    assert figures.spurious_dead_letters == 0 and figures.missing_dead_letters == 0


class _Progress:
    """The progress a ProgressClock would have recorded (pure: no Kafka, no MongoDB)."""

    def __init__(self, results: list[tuple[float, str]], documents: list[float]) -> None:
        self.results, self.documents = results, documents

    def first_result_after(self, moment: float, worker_id: str | None = None) -> float | None:
        return next((t for t, w in self.results if t > moment and worker_id in (None, w)), None)

    def first_document_after(self, moment: float) -> float | None:
        return next((t for t in self.documents if t > moment), None)


def test_recovery_is_measured_from_the_faulted_side_own_progress() -> None:
    from chaos.recovery import FaultRecord, measure

    progress = _Progress(
        results=[(11.0, "w-0"), (12.0, "w-0"), (19.0, "w-1"), (31.0, "w-0")], documents=[33.0]
    )
    records = [
        # w-1 killed at 10, restarted at 12: the survivor w-0's result at 12.0 is not w-1's recovery.
        FaultRecord(FaultKind.worker_kill, started=10.0, repaired=12.0, observed=True, worker_id="w-1"),
        # MongoDB back at 30: a result at 31 is not a document; the first new document (33) is.
        FaultRecord(FaultKind.mongo_outage, started=25.0, repaired=30.0, observed=True),
        FaultRecord(FaultKind.broker_restart, started=20.0, repaired=40.0, observed=True),  # nothing after
        FaultRecord(FaultKind.producer_restart, started=5.0, repaired=5.5, observed=False),
    ]
    recovery = measure(records, progress)  # type: ignore[arg-type]
    assert recovery.recovery_s == {"worker_kill": [9.0], "mongo_outage": [8.0]}
    assert recovery.after_repair_s == {"worker_kill": [7.0], "mongo_outage": [3.0]}
    assert recovery.unrecovered == 1  # the broker: no result after its repair
    assert recovery.unobserved == 1  # the producer restart never happened


def test_passed_needs_every_fault_observed_and_recovered_in_time_and_no_unplanned_exit() -> None:
    import dataclasses

    from chaos.report import HarnessReport

    plan = FaultPlan(
        worker_kills=2, broker_restarts=1, mongo_outages=1, producer_restarts=1, recovery_bound_s=30
    )
    clean = audit([("c", 0)], [("c", 0, "v1")], [("c", 0)], [], [])
    report = HarnessReport(
        mode="exactly-once",
        figures=clean,
        worker_kills=2,
        broker_restarts=1,
        mongo_outages=1,
        mongo_outage_s=30.0,
        producer_restarts=1,
        worker_unplanned_exits=0,
        recovery_s={"worker_kill": [5.0, 6.0]},
        recovery_after_repair_s={"worker_kill": [4.0, 29.0]},
        unrecovered_faults=0,
        unobserved_faults=0,
        producer={},
        bad_inputs_injected=0,
        seconds=1.0,
        plan=plan,
    )
    assert report.passed and report.failures == []
    duplicate_letter = dataclasses.replace(clean, duplicate_dead_letters=1)
    broken: dict[str, Any] = {
        "worker_unplanned_exits": 1,
        "broker_restarts": 0,  # the broker's death was not confirmed
        "mongo_outages": 0,
        "unrecovered_faults": 1,
        "unobserved_faults": 1,
        "worker_kills": 1,
        "recovery_after_repair_s": {"worker_kill": [4.0, 31.0]},  # above the bound
        "figures": duplicate_letter,
    }
    for field, value in broken.items():
        assert not dataclasses.replace(report, **{field: value}).passed, field
    at_least_once = dataclasses.replace(report, mode="at-least-once", figures=duplicate_letter)
    assert at_least_once.passed  # at-least-once may repeat a dead letter
