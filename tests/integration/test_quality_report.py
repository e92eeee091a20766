"""`lineguard report` on the real MongoDB of the stack (FerretDB here): known yields, labels, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from quality.generate import generate

pytestmark = pytest.mark.integration

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


def _report(endpoints: Endpoints, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGODB_URI": endpoints.mongodb_uri}
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "report", "--database", database, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def week(mongo_db: Database[dict[str, Any]]) -> Database[dict[str, Any]]:
    # one line, 24 hours, 100 parts an hour: 5 DEFECT, 2 UNCERTAIN re-inspected OK -> 2,448 documents
    mongo_db["inspections"].insert_many(list(generate(MONDAY, hours=24, lines=("L1",))))
    mongo_db["inspections"].insert_many(list(generate(MONDAY, hours=24, lines=("L2",), defects=20)))
    return mongo_db


def test_report_from_mongodb_has_the_known_yields(
    endpoints: Endpoints, week: Database[dict[str, Any]], tmp_path: Path
) -> None:
    week["labels"].insert_many(
        [
            {"camera_id": "cam-L1", "frame_number": 0, "label": "scratch", "labelled_at": MONDAY},
            {"camera_id": "cam-L1", "frame_number": 10, "label": "good", "labelled_at": MONDAY},
            {"camera_id": "cam-L1", "frame_number": 11, "label": "dent", "labelled_at": MONDAY},
        ]
    )
    out = tmp_path / "report"
    done = _report(
        endpoints, week.name, "--from", "2026-01-05T00:00Z", "--to", "2026-01-06T00:00Z",
        "--line", "L1", "--out", str(out), "--json", "--expected-rate", "v1=0.05",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["inspections"] == 24 * 102
    assert summary["first_pass_yield"] == pytest.approx(0.93)
    assert summary["final_yield"] == pytest.approx(0.95)
    assert summary["lines"] == ["L1"]
    # frame 0 DEFECT/scratch (agrees), 10 OK/good (agrees), 11 OK/dent (disagrees)
    assert summary["labels_reviewed"] == 3 and summary["label_agreement"] == pytest.approx(2 / 3)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Defect Pareto by class" in html
    saved = json.loads((out / "report.json").read_text())
    assert sum(row["defects"] for row in saved["tables"]["pareto_class"]) == 24 * 5
    assert (out / "tables" / "p_chart.csv").exists()


def test_the_p_chart_flags_the_worse_line_against_the_good_ones_rate(
    endpoints: Endpoints, week: Database[dict[str, Any]], tmp_path: Path
) -> None:
    done = _report(
        endpoints, week.name, "--from", "2026-01-05T00:00Z", "--to", "2026-01-06T00:00Z", "--line", "L2",
        "--spc-baseline", str(5 / 102), "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(done.stdout)["spc_points_flagged"] == 24
    )  # 20 % against 4.9 %: every hour beyond 3 sigma


def test_an_empty_range_is_one_line_and_exit_1(
    endpoints: Endpoints, week: Database[dict[str, Any]], tmp_path: Path
) -> None:
    done = _report(
        endpoints, week.name, "--from", "2025-01-01T00:00Z", "--to", "2025-01-02", "--out", str(tmp_path)
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "no inspections" in done.stderr
    assert not (tmp_path / "report.html").exists()
