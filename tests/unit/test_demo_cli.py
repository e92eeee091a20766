"""``lineguard demo`` as a user meets it: clear one-line errors, and the views render what they promise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.console import Console

from lineguard.demo.run import LiveStatus
from lineguard.demo.tally import DemoTally, Scored, score_verdicts
from lineguard.demo.view import live_table, summary_view
from schemas.records import Verdict


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from lineguard.cli import main

    monkeypatch.setattr(sys, "argv", ["lineguard", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0)


def test_a_missing_model_is_one_clear_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model"
    assert run_cli(monkeypatch, "demo", "--model", str(missing), "--no-stack") == 2
    err = capsys.readouterr().err
    assert f"model artifact not found: {missing}" in err
    assert "Traceback" not in err


def test_a_bad_frame_size_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(monkeypatch, "demo", "--size", "640by480", "--no-stack") == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def render(renderable: object) -> str:
    console = Console(record=True, width=140)
    console.print(renderable)
    return console.export_text()


def test_live_table_shows_the_running_figures() -> None:
    tally = DemoTally()
    status = LiveStatus("running", 12.0, 300, tally.snapshot(), lag=7)
    text = render(live_table(status))
    assert "lineguard demo: running" in text
    assert "0 / 300" in text
    assert "consumer lag" in text and "7" in text


def test_summary_shows_counts_scores_and_where_the_results_are() -> None:
    scored = [Scored("scratch", "scratch", Verdict.DEFECT, 0.1), Scored("good", "good", Verdict.OK, 0.1)]
    summary = {
        "stopped_by": "frames",
        "duration_s": 30.0,
        "produced": 2,
        "delivered": 2,
        "results": 2,
        "missing_results": 0,
        "mongodb_documents": 2,
        "defects": 1,
        "defect_events": 1,
        "dead_letters": 0,
        "throughput_fps": 9.5,
        "latency_ms": {"p50": 120.0, "p90": 150.0, "p99": 180.0, "max": 190.0},
        "accuracy": score_verdicts(scored, ("good", "scratch")),
        "model": {"name": "classifier", "version": "3", "task": "classify", "path": "/models/classifier"},
        "worker": {"exit_code": 0, "log": "/tmp/worker.log"},
        "where": {
            "kafka": "127.0.0.1:9092",
            "topics": {
                "frames": "demo.frames",
                "results": "demo.results",
                "defect_events": "demo.defect-events",
                "dead_letters": "demo.dead-letters",
            },
            "consumer_group": "demo-workers",
            "mongodb": {"database": "lineguard_demo", "collection": "inspections"},
        },
    }
    text = render(summary_view(summary))
    assert "120 ms / 180 ms / 190 ms" in text
    assert "100.0 %" in text  # accuracy, precision and recall of the two frames
    assert "demo.results" in text and "database lineguard_demo, collection inspections" in text
    assert "scratch" in text
