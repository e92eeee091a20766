"""The promotion gate on the MongoDB (GridFS) registry: shadow summaries and parity results kept in
``model_shadow_reports``, the latest one deciding, and the reason of each promotion in the alias history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.stack.endpoints import Endpoints
from schemas.errors import ConfigurationError
from tests.unit.test_registry import make_artifact
from tests.unit.test_shadow_gate import POLICY, _frames, _report
from vision.registry.gridfs import GridFSRegistry
from vision.shadow_gate import ShadowReportStore, gate_summary

pytestmark = pytest.mark.integration


def test_gate_on_the_gridfs_registry(
    endpoints: Endpoints, mongo_db: Database[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = GridFSRegistry(endpoints.mongodb_uri, database=mongo_db.name, cache_dir=tmp_path / "cache")
    try:
        for version in ("1", "2", "3"):
            registry.publish(make_artifact(tmp_path, "cls", version))
        registry.promote("L1", "cls", "1")
        store = ShadowReportStore(registry)
        assert store.latest("cls", "2", "L1") is None and store.latest_parity("cls", "2") is None
        store.put(gate_summary(_report(_frames(200, 30, 0), report_id="a"), "L1", POLICY))
        failing = store.latest("cls", "2", "L1")
        assert failing is not None and failing["report_id"] == "a"
        env = {"LINEGUARD_MODEL_REGISTRY_DATABASE": mongo_db.name, "LINEGUARD_GATE_MIN_FRAMES": "100"}
        promote = ["models", "promote", "--model", "cls", "--line", "L1", "--registry", endpoints.mongodb_uri]
        runner = CliRunner()
        refused = runner.invoke(app, [*promote, "--version", "2"], env=env)
        assert isinstance(refused.exception, ConfigurationError), refused.output
        assert "escape rate 30.00%" in str(refused.exception)
        store.put(gate_summary(_report(_frames(200, 0, 0), report_id="b"), "L1", POLICY))
        allowed = runner.invoke(app, [*promote, "--version", "2"], env=env)
        assert allowed.exit_code == 0, allowed.output
        # A failed golden parity of version 3 refuses it even with a passing report.
        store.put(gate_summary(_report(_frames(200, 0, 0), version="3", report_id="c"), "L1", POLICY))
        store.put_parity(
            {
                "model": "cls",
                "version": "3",
                "status": "failed",
                "detail": "2 of 12 frames",
                "checked_at": "t1",
            }
        )
        parity = runner.invoke(app, [*promote, "--version", "3"], env=env)
        assert "parity failed: 2 of 12 frames" in str(parity.exception)
        forced = runner.invoke(
            app, [*promote, "--version", "3", "--force", "--reason", "known ONNX drift"], env=env
        )
        assert forced.exit_code == 0, forced.output
        reasons = [(c.version, c.reason) for c in registry.history("L1")]
        assert reasons[0] == ("1", None)  # promoted through the library, without a reason
        assert reasons[1][0] == "2" and (reasons[1][1] or "").startswith("shadow gate passed: report b")
        assert reasons[2] == ("3", "forced: known ONNX drift")
    finally:
        registry.close()
