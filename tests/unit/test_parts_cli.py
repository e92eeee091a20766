"""`lineguard parts` with a bad rules file: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_bad_rules_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("lines: {line-1: {rule: sometimes}}\n")

    done = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "parts", "--rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert "rule must be one of any-ng" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
