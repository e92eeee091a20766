"""The pure parts of the fault harness: the seeded schedule and the audit arithmetic."""

from __future__ import annotations

import itertools

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
