"""Package boundaries of ``parts``: it consumes topics through ``schemas`` and the shared plumbing, never
through ``workers`` or ``streams``, and nothing below it imports it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_parts_never_imports_workers_or_streams() -> None:
    offenders = {
        path.name: sorted(_top_level_imports(path) & {"workers", "streams"})
        for path in (ROOT / "parts").rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_lower_layers_never_import_parts() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("schemas", "workers", "streams", "vision")
        for path in (ROOT / package).rglob("*.py")
        if "parts" in _top_level_imports(path)
    ]
    assert offenders == []
