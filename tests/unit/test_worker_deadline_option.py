"""`lineguard worker --deadline-ms` reaches the worker's settings, overrides the environment, and a negative
value is refused before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import workers.cli
from workers.settings import WorkerSettings


def _settings_of(args: list[str], monkeypatch: pytest.MonkeyPatch) -> WorkerSettings:
    seen: list[WorkerSettings] = []

    def capture(settings: WorkerSettings) -> int:  # the run itself needs Kafka: only the settings matter here
        seen.append(settings)
        return 0

    monkeypatch.setattr(workers.cli, "run_worker", capture)
    app = typer.Typer()
    app.command()(workers.cli.worker)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return seen[0]


def test_the_flag_sets_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINEGUARD_WORKER_DEADLINE_MS", raising=False)
    assert _settings_of([], monkeypatch).deadline_ms == 0.0
    assert _settings_of(["--deadline-ms", "200"], monkeypatch).deadline_ms == 200.0


def test_the_flag_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEGUARD_WORKER_DEADLINE_MS", "120")
    assert _settings_of([], monkeypatch).deadline_ms == 120.0
    assert _settings_of(["--deadline-ms", "80"], monkeypatch).deadline_ms == 80.0


def test_a_negative_deadline_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "worker", "--deadline-ms", "-5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--deadline-ms" in done.stderr
