"""`lineguard stack` as a user meets it: no services needed for these paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "stack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """No overrides, an empty cache and a private state directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    env["LINEGUARD_CACHE_DIR"] = str(tmp_path / "cache")
    env["LINEGUARD_STACK_STATE_DIR"] = str(tmp_path / "stack")
    return env


def test_up_with_both_variables_set_starts_nothing(clean_env: dict[str, str], tmp_path: Path) -> None:
    env = {**clean_env, "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "MONGODB_URI": "mongodb://db:27017/"}

    result = _run(env, "up")

    assert result.returncode == 0, result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS is set: using it, not starting kafka" in result.stderr
    assert "MONGODB_URI is set: using it, not starting mongodb" in result.stderr
    assert not (tmp_path / "stack").exists()


def test_missing_tools_give_one_line_and_exit_2(clean_env: dict[str, str]) -> None:
    env = {**clean_env, "PATH": str(Path(clean_env["LINEGUARD_CACHE_DIR"]) / "no-such-bin")}

    result = _run(env, "up")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needed in ("java", "mvn", "go", "docker compose", "KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI"):
        assert needed in lines[0]


def test_status_of_a_stack_never_started_here_is_absent_and_exit_1(clean_env: dict[str, str]) -> None:
    result = _run(clean_env, "status")

    assert result.returncode == 1
    rows = [line.split()[:2] for line in result.stdout.splitlines()]
    assert rows == [["kafka", "absent"], ["mongodb", "absent"]]


def test_unknown_service_is_a_usage_error(clean_env: dict[str, str]) -> None:
    result = _run(clean_env, "up", "--service", "zookeeper")

    assert result.returncode == 2
    assert "zookeeper" in result.stderr
