"""The `lineguard` command's manners: --version, -h, and usage mistakes as one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _lineguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_version_and_short_help() -> None:
    version = _lineguard("--version")
    assert version.returncode == 0 and version.stdout.startswith("lineguard "), version.stderr
    short = _lineguard("-h")
    assert short.returncode == 0 and "Usage:" in short.stdout and "lag" in short.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--log-level", "FOO", "stack", "status"), "--log-level"),
        (("worker", "--no-such-option"), "No such option: --no-such-option"),
        (("lag", "--port", "not-a-port"), "--port"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    done = _lineguard(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in done.stderr and "╭" not in done.stderr


def test_every_worker_option_names_the_setting_it_reads() -> None:
    import typer.main

    from lineguard.cli import app
    from workers.settings import WorkerSettings

    command = typer.main.get_command(app)
    worker = command.get_command(None, "worker")  # type: ignore[attr-defined]
    options = [p for p in worker.params if p.name != "topic_prefix"]  # a shorthand for four settings
    assert len(options) >= 14
    for option in options:
        assert option.envvar and option.envvar.startswith("LINEGUARD_WORKER_"), option.name
        assert option.envvar.removeprefix("LINEGUARD_WORKER_").lower() in WorkerSettings.model_fields
