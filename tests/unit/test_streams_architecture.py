"""``streams`` and ``workers`` never import each other (what both need is in ``schemas`` or ``lineguard``),
and a camera process never loads TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import streams

STREAMS_DIR = Path(streams.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_streams_never_imports_workers() -> None:
    offenders = {
        str(path.relative_to(STREAMS_DIR)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == "workers"
        )
        for path in STREAMS_DIR.rglob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_a_camera_process_does_not_load_tensorflow() -> None:
    # A camera runs next to the line on small hardware: TensorFlow is 1.3 GB installed and 5 s to import.
    probe = (
        "import sys, streams.cli, streams.camera, streams.sources.synthetic, streams.sources.folder; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'workers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
