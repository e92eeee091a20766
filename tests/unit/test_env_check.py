"""Unknown LINEGUARD_* variables are warned about, one line each with a "did you mean", when a command runs
(not for --help); the table of known names is the set the code reads, computed here from the code."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import typer
import typer.main
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from lineguard.cli import COMMANDS, app
from lineguard.env_check import (
    KNOWN,
    READ_DIRECTLY,
    SETTINGS_AND_OPTIONS,
    asks_for_help,
    command_envvars,
    unknown_variables,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lineguard", "infra", "workers", "streams", "vision", "schemas", "parts", "quality", "mes")
THIS_FILE = Path(__file__).resolve()


def _settings_names() -> set[str]:
    """Every settings class in the source tree (found by reading it), imported: its fields' variables."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"^class \w+\(BaseSettings\)", path.read_text(), re.MULTILINE):
                importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    names: set[str] = set()
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not cls.__module__.startswith(PACKAGES):
            continue
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names |= {
                    a.upper()
                    for a in alias.choices
                    if isinstance(a, str) and a.upper().startswith("LINEGUARD_")
                }
            elif isinstance(alias, str):
                names.add(alias.upper())
            else:
                names.add(f"{prefix}{field_name}".upper())
    return names


def _option_names() -> set[str]:
    root = typer.main.get_command(app)
    for module in COMMANDS:
        root.load(module)  # type: ignore[attr-defined]
    return command_envvars(root)


def _literal_names() -> set[str]:
    """Full LINEGUARD_* names written in the source, deploy files and tooling (prefixes end with '_')."""
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.suffix in (".sh", ".yaml", ".yml", ".py", ".json")]
    files += [*list(ROOT.glob("docker-compose*.yml")), ROOT / "Dockerfile", ROOT / ".ci" / "run"]
    files += [p for p in (ROOT / "tests").rglob("*.py") if p != THIS_FILE]
    found: set[str] = set()
    for path in files:
        if path.is_file():
            found |= {n for n in re.findall(r"LINEGUARD_[A-Z0-9_]+", path.read_text()) if not n.endswith("_")}
    return found


def test_the_table_is_exactly_what_the_options_and_settings_read() -> None:
    computed = {n for n in _option_names() | _settings_names() if n.startswith("LINEGUARD_")}
    assert computed - SETTINGS_AND_OPTIONS == set(), "add these to lineguard/env_check.py"
    assert SETTINGS_AND_OPTIONS - computed == set(), "nothing reads these any more: remove them"


def test_every_name_written_anywhere_is_known_and_every_direct_read_is_written_somewhere() -> None:
    written = _literal_names()
    assert written - KNOWN == set()
    assert written >= READ_DIRECTLY


def test_unknown_names_get_the_closest_known_one() -> None:
    environ = {
        "LINEGUARD_WORKER_MAX_BATCH": "64",
        "LINEGUARD_KAFKA_BOOTSTRAP_SERVER": "x:9092",
        "lineguard_worker_max_wait_ms": "5",  # settings read names case-insensitively: known
        "LINEGUARD_COMPLETELY_DIFFERENT": "1",
        "KAFKA_BOOTSTRAP_SERVERS": "x:9092",  # not ours
        "LINEGUARD_LOG_LEVEL": "INFO",
    }
    assert unknown_variables(environ) == [
        ("LINEGUARD_COMPLETELY_DIFFERENT", None),
        ("LINEGUARD_KAFKA_BOOTSTRAP_SERVER", "LINEGUARD_KAFKA_BOOTSTRAP_SERVERS"),
        ("LINEGUARD_WORKER_MAX_BATCH", "LINEGUARD_WORKER_MAX_BATCH_SIZE"),
    ]
    assert asks_for_help(["worker", "--help"], ["-h", "--help"])
    assert not asks_for_help(["tail", "--", "--help"], ["-h", "--help"])  # after --: a value


def _run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LINEGUARD_")}
    env |= {"LINEGUARD_STACK_STATE_DIR": str(tmp_path), **extra}  # an empty stack: status answers at once
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_a_misspelt_variable_is_one_warning_line_when_a_command_runs_and_none_for_help(
    tmp_path: Path,
) -> None:
    ran = _run(["stack", "status"], tmp_path, LINEGUARD_WORKER_MAX_BATCH="64")
    warnings = [line for line in ran.stderr.splitlines() if "LINEGUARD_WORKER_MAX_BATCH" in line]
    assert warnings == [line for line in ran.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "did you mean LINEGUARD_WORKER_MAX_BATCH_SIZE?" in warnings[0]
    assert "Traceback" not in ran.stderr
    for quiet in (["stack", "status", "--help"], ["worker", "-h"], ["--help"], ["dlq"]):
        shown = _run(quiet, tmp_path, LINEGUARD_WORKER_MAX_BATCH="64")
        assert "LINEGUARD_WORKER_MAX_BATCH " not in shown.stderr + shown.stdout, quiet
    clean = _run(["stack", "status"], tmp_path, LINEGUARD_WORKER_MAX_BATCH_SIZE="64")
    assert "WARNING" not in clean.stderr
