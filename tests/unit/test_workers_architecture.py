"""Package boundaries of ``workers``: it never imports ``streams``, and its CLI stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

WORKERS = Path(__file__).resolve().parents[2] / "workers"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_workers_never_import_streams() -> None:
    offenders = {
        str(path.relative_to(WORKERS)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == "streams"
        )
        for path in WORKERS.rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_cli_and_pipeline_import_without_tensorflow_or_opencv() -> None:
    code = (
        "import sys, workers.cli, workers.pipeline; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'cv2', 'onnxruntime') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # vision.preprocess (shared with training) needs OpenCV; the heavy model runtimes load only when used.
    assert "tensorflow" not in loaded and "keras" not in loaded and "onnxruntime" not in loaded
