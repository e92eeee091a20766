"""Per-line and per-camera thresholds: precedence, live pick-up through the cheap change check, and staying
up when the registry is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from schemas.errors import ConfigurationError
from vision.registry import DirectoryRegistry
from vision.thresholds import Thresholds, ThresholdStore, list_thresholds, set_thresholds

MODEL_DEFAULT = Thresholds(defect=0.5, uncertain=0.4)


def test_most_specific_entry_wins(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path)
    set_thresholds(registry, "cls", "*", Thresholds(0.7, 0.6))
    set_thresholds(registry, "cls", "L1", Thresholds(0.8, 0.5))
    set_thresholds(registry, "cls", "L1", Thresholds(0.9, 0.3), camera="cam-7")
    set_thresholds(registry, "other-model", "L2", Thresholds(0.1, 0.1))
    store = ThresholdStore(registry, "cls", MODEL_DEFAULT)

    assert store.lookup("L1", "cam-7") == Thresholds(0.9, 0.3)  # camera
    assert store.lookup("L1", "cam-8") == Thresholds(0.8, 0.5)  # line
    assert store.lookup("L1") == Thresholds(0.8, 0.5)
    assert store.lookup("L2", "cam-1") == Thresholds(0.7, 0.6)  # fleet-wide override of this model
    assert ThresholdStore(registry, "unset", MODEL_DEFAULT).lookup("L1") == MODEL_DEFAULT


def test_changes_reach_a_running_store_after_its_check_interval(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path)
    now = [0.0]
    store = ThresholdStore(registry, "cls", MODEL_DEFAULT, min_check_interval_s=1.0, clock=lambda: now[0])
    assert store.lookup("L1") == MODEL_DEFAULT

    # Written by another process (the CLI) through its own registry handle.
    set_thresholds(DirectoryRegistry(tmp_path), "cls", "L1", Thresholds(0.65, 0.45))
    assert store.lookup("L1") == MODEL_DEFAULT  # within the interval: no registry read at all
    now[0] = 1.1
    assert store.lookup("L1") == Thresholds(0.65, 0.45)
    set_thresholds(registry, "cls", "L1", Thresholds(0.6, 0.2))  # replaces, does not add
    now[0] = 2.2
    assert store.lookup("L1") == Thresholds(0.6, 0.2)
    assert len(list_thresholds(registry, "cls")) == 1


def test_a_broken_thresholds_file_keeps_the_last_good_table(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path)
    set_thresholds(registry, "cls", "L1", Thresholds(0.65, 0.45))
    now = [0.0]
    store = ThresholdStore(registry, "cls", MODEL_DEFAULT, clock=lambda: now[0])
    assert store.lookup("L1") == Thresholds(0.65, 0.45)
    (tmp_path / "thresholds.json").write_text("not json")
    now[0] = 5.0
    assert store.lookup("L1") == Thresholds(0.65, 0.45)


def test_uncertain_defaults_to_the_workers_review_band(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "thresholds",
            "set",
            "--model",
            "cls",
            "--line",
            "L1",
            "--defect",
            "0.5",
            "--registry",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    found = ThresholdStore(DirectoryRegistry(tmp_path), "cls", MODEL_DEFAULT).lookup("L1")
    assert found.defect == 0.5 and found.uncertain == pytest.approx(0.4)


def test_invalid_thresholds_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="uncertain <= defect"):
        Thresholds(defect=0.3, uncertain=0.6)


def test_thresholds_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    where = ["--registry", str(tmp_path)]
    result = runner.invoke(
        app,
        [
            "thresholds",
            "set",
            "--model",
            "cls",
            "--line",
            "L1",
            "--camera",
            "c1",
            "--defect",
            "0.6",
            "--uncertain",
            "0.4",
            *where,
        ],
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["thresholds", "show", "--model", "cls", *where], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "c1" in shown.output and "0.6" in shown.output
    bad = runner.invoke(
        app,
        [
            "thresholds",
            "set",
            "--model",
            "cls",
            "--line",
            "L1",
            "--defect",
            "0.2",
            "--uncertain",
            "0.5",
            *where,
        ],
    )
    assert isinstance(bad.exception, ConfigurationError)
    assert ThresholdStore(DirectoryRegistry(tmp_path), "cls", MODEL_DEFAULT).lookup("L1", "c1") == Thresholds(
        0.6, 0.4
    )
