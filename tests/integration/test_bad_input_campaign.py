"""A short bad-input campaign through a live worker (the full one is ``bench/bad_input_campaign.py``).

Every poison record must come back as a dead letter with its expected reason, the worker must never exit on
its own, must still inspect good frames (some with hostile headers) afterwards, and must drain on SIGTERM,
all under an address-space limit with a peak RSS below 1 GB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.campaign import CampaignConfig, run_campaign
from lineguard.stack.endpoints import Endpoints
from tests.integration.test_workers_support import cached_test_model

pytestmark = pytest.mark.integration


def test_a_few_hundred_poison_records_are_all_dead_lettered_and_the_worker_keeps_serving(
    endpoints: Endpoints, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = cached_test_model(tmp_path_factory.getbasetemp())
    report = run_campaign(
        CampaignConfig(cases=300, model=model, work_dir=tmp_path, seed=11, good_frames=60, idle_timeout_s=90),
        endpoints,
    )
    print(report.to_json())  # the figures (pytest -s)
    crash_log = "\n".join(report.crash_logs[:1])
    assert report.crashes == 0, crash_log
    assert report.wrong_reason_examples == []
    assert report.missing_by_kind == {}
    assert report.dead_lettered == report.cases == 300
    assert report.accepted_as_frames == 0
    assert set(report.reasons) >= {"UNDECODABLE_RECORD", "UNKNOWN_SCHEMA", "CORRUPT_IMAGE", "OVERSIZE"}
    assert report.good_frames_inspected == report.good_frames_sent == 60
    assert report.worker_exit_code == 0
    # Under RLIMIT_AS, with WebP/TIFF/PGM bombs that decode to 16000x16000 in the corpus (issue 19).
    assert report.memory_limit_mb is not None
    assert 0 < report.peak_rss_mb < 1024
    assert report.passed
