"""`lineguard report` refuses bad options with one line and exit 2, before it connects to anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ("--from", "yesterday"),
        ("--from", "2026-01-06", "--to", "2026-01-05"),
        ("--from", "2026-01-05", "--shifts", "early=6:30"),
        ("--from", "2026-01-05", "--expected-rate", "v1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    env = {**os.environ, "MONGODB_URI": "mongodb://127.0.0.1:9/"}  # never reached
    done = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "report", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
