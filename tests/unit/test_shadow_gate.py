"""The promotion gate: a candidate's latest shadow report decides `lineguard models promote`; --force with a
reason overrides and the reason lands in the alias history; rollback stays one command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from schemas.errors import ConfigurationError
from tests.unit.test_registry import make_artifact
from vision.registry import DirectoryRegistry
from vision.shadow_gate import GatePolicy, ShadowReportStore, check_gate, gate_summary
from vision.shadow_stats import ComparedFrame, breakdown


def _frames(n: int, escapes: int, false_rejects: int, labels: bool = False) -> list[ComparedFrame]:
    """n frames on line L1: half production DEFECT, half OK; the candidate escapes/false-rejects some."""
    frames = []
    for i in range(n):
        defect = i % 2 == 0
        prod = "DEFECT" if defect else "OK"
        cand = prod
        if defect and i // 2 < escapes:
            cand = "OK"
        if not defect and i // 2 < false_rejects:
            cand = "DEFECT"
        label = ("scratch" if defect else "good") if labels else None
        frames.append(ComparedFrame("L1", "cam", i, cand, None, "x", prod, None, "scratch", label))
    return frames


def _report(frames: list[ComparedFrame], version: str = "2", report_id: str = "r1") -> dict[str, Any]:
    return {
        "report_id": report_id,
        "generated_at": f"2026-12-03T07:00:00+00:00-{report_id}",
        "candidate": {"model": "cls", "version": version},
        "comparison": breakdown(frames),
    }


POLICY = GatePolicy(min_frames=100, min_labelled=20, false_reject_budget=0.05)


def _decide(frames: list[ComparedFrame], policy: GatePolicy = POLICY, **kw: Any) -> str:
    summary = gate_summary(_report(frames), "L1", policy, **kw)
    decision = check_gate(summary, "cls", "2", "L1", policy)
    return ("ok: " if decision.allowed else "refused: ") + decision.reason


def test_gate_rules() -> None:
    assert _decide(_frames(200, 0, 0)).startswith("ok: shadow gate passed")
    assert "compared 50 frames, the gate needs 100" in _decide(_frames(50, 0, 0))
    # Against production: 0 of 100 DEFECT frames escape for production, upper end 3.7 %; 5 % is worse.
    assert "escape rate 5.00% (5/100, vs production)" in _decide(_frames(200, 5, 0))
    assert _decide(_frames(200, 3, 0)).startswith("ok")
    assert "over line L1's budget of 5.00%" in _decide(_frames(200, 0, 6))
    line_budget = GatePolicy(min_frames=100, false_reject_budget=0.05, line_budgets={"L1": 0.1})
    assert _decide(_frames(200, 0, 6), line_budget).startswith("ok")
    parity = {"status": "failed", "detail": "frame 3: 0.41 vs 0.52"}
    assert "parity failed: frame 3" in _decide(_frames(200, 0, 0), parity=parity)
    assert "no shadow report of cls 2 on line L1" in check_gate(None, "cls", "2", "L1", POLICY).reason


def test_labels_are_the_reference_when_enough_frames_are_labelled() -> None:
    summary = gate_summary(_report(_frames(200, 5, 0, labels=True)), "L1", POLICY)
    assert summary["escape"]["reference"] == "labels"
    # Production escapes nothing of the 100 labelled defects either: the candidate's 5 % is refused.
    assert not check_gate(summary, "cls", "2", "L1", POLICY).allowed


def test_store_keeps_the_latest_summary_per_model_version_and_line(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "reg")
    store = ShadowReportStore(registry)
    assert store.latest("cls", "2", "L1") is None
    store.put(gate_summary(_report(_frames(200, 9, 0), report_id="a"), "L1", POLICY))
    store.put(gate_summary(_report(_frames(200, 0, 0), report_id="b"), "L1", POLICY))
    latest = store.latest("cls", "2", "L1")
    assert latest is not None and latest["report_id"] == "b"
    assert store.latest("cls", "2", "L2") is None and store.latest("cls", "3", "L1") is None


def test_promote_refused_allowed_forced_and_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEGUARD_GATE_MIN_FRAMES", "100")
    where = str(tmp_path / "reg")
    registry = DirectoryRegistry(Path(where))
    for version in ("1", "2", "3"):
        registry.publish(make_artifact(tmp_path, "cls", version))
    runner = CliRunner()

    def promote(version: str, *extra: str) -> Any:
        args = ["models", "promote", "--model", "cls", "--version", version, "--line", "L1"]
        return runner.invoke(app, [*args, "--registry", where, *extra])

    assert promote("1").exit_code == 0  # first model of the line: nothing to shadow against
    store = ShadowReportStore(registry)
    store.put(gate_summary(_report(_frames(200, 20, 0), version="2"), "L1", POLICY))
    refused = promote("2")
    assert isinstance(refused.exception, ConfigurationError)
    assert str(refused.exception).startswith("promotion refused: escape rate 20.00% (20/100")
    store.put(gate_summary(_report(_frames(200, 0, 0), version="2", report_id="r2"), "L1", POLICY))
    assert promote("2").exit_code == 0
    assert "no shadow report of cls 3" in str(promote("3").exception)
    assert "--force needs --reason" in str(promote("3", "--force").exception)
    assert promote("3", "--force", "--reason", "hotfix for lens change, ticket 42").exit_code == 0
    # Through the real entry point: one line on stderr and exit code 2.
    command = [sys.executable, "-m", "lineguard.cli", "models", "promote", "--model", "cls"]
    done = subprocess.run(
        [*command, "--version", "1", "--line", "L1", "--registry", where, "--force", "--reason", " "],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "--force needs --reason" in done.stderr
    history = registry.history("L1")
    assert [(c.version, c.reason) for c in history] == [
        ("1", "first production model of the line (nothing to shadow against)"),
        ("2", history[1].reason),
        ("3", "forced: hotfix for lens change, ticket 42"),
    ]
    assert history[1].reason is not None and history[1].reason.startswith("shadow gate passed: report r2")
    rollback = runner.invoke(app, ["models", "rollback", "--line", "L1", "--registry", where])
    assert rollback.exit_code == 0
    alias = registry.alias("L1")
    assert alias is not None and alias.version == "2"
