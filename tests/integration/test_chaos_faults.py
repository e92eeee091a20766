"""A short fault run on a private stack: worker SIGKILLs, a broker SIGKILL, a MongoDB SIGKILL and a producer
restart while frames flow, then the outside audit (``python -m chaos run`` is the full version).

The stack is the test's own (its broker gets killed), started from the shared cache's jars and binaries. Kept
short for CI (about a minute of production per mode); what it asserts is the harness's whole verdict: every
fault observed and recovered by the side that was faulted, no unplanned exit, nothing lost or duplicated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.faults import FaultPlan
from chaos.harness import HarnessConfig, run_harness
from tests.integration.test_workers_support import cached_test_model

pytestmark = pytest.mark.integration

PLAN = FaultPlan(
    worker_kills=3,
    broker_restarts=1,
    mongo_outages=1,
    mongo_outage_s=3,
    producer_restarts=1,
    recovery_window_s=5,
    recovery_bound_s=60,
    worker_start_allowance_s=30,  # a restarted worker may wait out a broker restart before its first batch
)


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_faults_lose_nothing_and_duplicate_no_document(
    exactly_once: bool, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = HarnessConfig(
        exactly_once=exactly_once,
        frames=120,
        model=cached_test_model(tmp_path_factory.getbasetemp()),
        work_dir=tmp_path,
        plan=PLAN,
        seed=3,
        fps=20,
        bad_inputs=10,
        idle_timeout_s=90,
    )
    report = run_harness(config)
    print(json.dumps(report.to_json()))  # the figures, with `pytest -s`
    figures = report.figures
    assert report.failures == [], json.dumps(report.to_json(), indent=1)
    # Every planned fault was seen to happen (worker gone, broker process and port gone, MongoDB process
    # gone and not answering) and was recovered by the side that was faulted.
    assert (report.worker_kills, report.broker_restarts, report.mongo_outages) == (3, 1, 1)
    assert report.producer_restarts == 1 and report.unobserved_faults == 0
    assert {kind: len(v) for kind, v in report.recovery_after_repair_s.items()} == {
        "worker_kill": 3,
        "broker_restart": 1,
        "mongo_outage": 1,
    }
    assert report.worker_unplanned_exits == 0 and report.unrecovered_faults == 0
    assert figures.frames == 120 and figures.lost == 0
    assert figures.unexpected_results == 0 and figures.duplicate_documents == 0
    assert figures.spurious_dead_letters == 0 and figures.missing_dead_letters == 0
    assert report.bad_inputs_injected == 10
    assert report.producer["failed"] == 0 and report.producer["spool_dropped"] == 0
    if exactly_once:
        assert figures.duplicate_results == 0 and figures.duplicate_dead_letters == 0
    assert report.passed
