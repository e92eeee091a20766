"""Layering of the report (quality/) and the MES sink (mes/): only the CLIs and the chaos harness use them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("quality", "mes")
# The console's CLI applies the MES migrations at start when it serves from the PostgreSQL read model.
ALLOWED = {Path("lineguard/cli.py"), Path("lineguard/console/cli.py"), Path("chaos/postgres_outage.py")}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_lower_layer_imports_the_report_or_the_sink() -> None:
    offenders = []
    for package in ("schemas", "streams", "workers", "vision", "lineguard", "chaos"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if relative in ALLOWED:
                continue
            if used := _imports(path) & set(TOP):
                offenders.append(f"{relative}: {sorted(used)}")
    assert offenders == []


def test_the_report_never_imports_kafka_or_the_workers_runtime() -> None:
    # quality/counters is a consumer of the results topic (the live counters), so Kafka is its input; the
    # report itself reads only MongoDB.
    for path in (ROOT / "quality").rglob("*.py"):
        if path.is_relative_to(ROOT / "quality" / "counters"):
            assert not _imports(path) & {"workers", "streams", "mes"}, path
            continue
        assert not _imports(path) & {"confluent_kafka", "workers", "streams", "mes"}, path
