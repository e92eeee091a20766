"""Issue 18, item 4 (short form): a group whose workers join and leave every few seconds (SIGTERM and SIGKILL)
while frames flow loses nothing and, under exactly-once, writes every result and document once."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.model import resolve_model
from chaos.rebalance_storm import StormConfig, run_storm
from lineguard.stack.endpoints import Endpoints

pytestmark = pytest.mark.integration


def test_exactly_once_survives_a_rebalance_storm(endpoints: Endpoints, tmp_path: Path) -> None:
    config = StormConfig(
        exactly_once=True, frames=200, fps=8.0, workers=3, min_period_s=4.0, max_period_s=6.0
    )
    report = run_storm(config, endpoints, tmp_path, resolve_model(None))
    assert report.joins + report.leaves_sigterm + report.leaves_sigkill >= 3  # the storm really happened
    assert report.leaves_sigkill >= 1
    figures = report.figures
    assert (figures.lost, figures.duplicate_documents, figures.duplicate_results) == (0, 0, 0)
    assert report.unplanned_exits == 0
