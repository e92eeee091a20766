"""Golden replay: a folder of frames with expected verdicts through a real artifact on both backends; a wrong
expectation is a verdict diff, an exported graph that drifted from its Keras checkpoint is a parity failure,
and the gate refuses a candidate whose last golden replay failed parity."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from schemas.errors import ConfigurationError
from tests.integration.shadow_support import MODEL, registry_with, variant
from tests.unit.test_shadow_gate import POLICY, _frames, _report
from vision.shadow_gate import ShadowReportStore, gate_summary
from workers.shadow.golden import golden_replay

pytestmark = pytest.mark.integration


def _drifted(model_dir: Path, root: Path) -> Path:
    """A copy whose ONNX graph no longer matches its Keras weights: one initializer shifted."""
    import onnx
    from onnx import numpy_helper

    target = variant(model_dir, root, "t9")
    graph = onnx.load(str(target / "model.onnx"))
    biggest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.dims else 0)
    weights = numpy_helper.to_array(biggest).copy()
    biggest.CopyFrom(numpy_helper.from_array(weights * 1.5 + 0.05, biggest.name))
    onnx.save(graph, str(target / "model.onnx"))
    return target


def _golden_folder(root: Path, count: int = 12) -> Path:
    import cv2

    from vision.synthetic import SyntheticDefectGenerator

    folder = root / "golden"
    unsorted = folder / "OK"
    unsorted.mkdir(parents=True)
    generator = SyntheticDefectGenerator(width=160, height=128, defect_rate=0.5, seed=5)
    for index in range(count):
        image = generator.generate(index).image
        assert image is not None
        cv2.imwrite(str(unsorted / f"frame-{index:02d}.png"), image)
    return folder


def test_golden_verdicts_parity_and_the_gate(model_dir: Path, tmp_path: Path) -> None:
    folder = _golden_folder(tmp_path)
    first = golden_replay(model_dir, folder)
    assert first["frames"] == 12 and first["served_backend"] == "onnx"
    assert first["parity"]["status"] == "passed" and first["parity"]["max_abs_diff"] <= 5e-3
    # File each frame under the verdict it got: then nothing differs; move one and exactly that one does.
    for diff in first["verdict_diffs"]:
        target = folder / diff["got"]
        target.mkdir(exist_ok=True)
        shutil.move(str(folder / "OK" / diff["frame"]), str(target / diff["frame"]))
    assert golden_replay(model_dir, folder)["passed"]
    source = min((p for d in folder.iterdir() for p in d.iterdir()), key=lambda p: p.name)
    wrong = "OK" if source.parent.name == "DEFECT" else "DEFECT"
    (folder / wrong).mkdir(exist_ok=True)
    shutil.move(str(source), str(folder / wrong / source.name))
    diffs = golden_replay(model_dir, folder)["verdict_diffs"]
    assert [d["frame"] for d in diffs] == [source.name] and diffs[0]["expected"] == wrong

    registry = registry_with(model_dir, tmp_path)
    registry.publish(_drifted(model_dir, tmp_path))
    where = str(registry.root)
    runner = CliRunner()
    golden = ["shadow", "golden", "--frames", str(folder), "--registry", where, "--model", MODEL]
    drifted = runner.invoke(app, [*golden, "--version", "t9"])
    assert drifted.exit_code == 1 and '"status": "failed"' in drifted.stdout
    # A shadow report that would pass: the parity failure alone refuses the promotion.
    ShadowReportStore(registry).put(
        gate_summary(_report(_frames(200, 0, 0), version="t9"), "L1", POLICY)
        | {"model": MODEL, "line": "line-1"}
    )
    refused = runner.invoke(
        app,
        ["models", "promote", "--model", MODEL, "--version", "t9", "--line", "line-1", "--registry", where],
    )
    assert isinstance(refused.exception, ConfigurationError)
    assert str(refused.exception).startswith("promotion refused: Keras-vs-ONNX parity failed: ")
