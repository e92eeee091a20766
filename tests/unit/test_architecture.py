"""The house's floors: every import in the tree points down, and no two modules import each other in a circle.

Floors, bottom to top (a module imports its own package and the floors below it, never a floor above it and
never a sibling on its own floor):

0. ``schemas``: the Avro contracts, the vocabulary every side speaks;
1. ``infra``: settings, endpoints, topic admin, access checks, claim-check, logging;
2. ``vision``: model code shared by training and serving;
3. ``streams``, ``workers``, ``parts``, ``quality``, ``mes``: the sides that produce and consume the topics;
4. ``lineguard``: the CLI, demo, console and local development stack;
5. ``chaos``: the fault harness, which drives everything below;
6. ``bench``: the benchmarks (some reuse the harness).

Every import counts, at module level or inside a function: a lazy import still ties the two modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FLOORS: dict[str, int] = {
    "schemas": 0,
    "infra": 1,
    "vision": 2,
    "streams": 3,
    "workers": 3,
    "parts": 3,
    "quality": 3,
    "mes": 3,
    "lineguard": 4,
    "chaos": 5,
    "bench": 6,
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in FLOORS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import in the file, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in MODULES else base), node.lineno


def _project_module(imported: str) -> str | None:
    """The project module an import names (its longest known prefix), or None for third-party code."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for imported, _ in _imports(name, path):
            target = _project_module(imported)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def test_every_import_points_down_or_stays_in_its_package() -> None:
    offenders = []
    for name, path in MODULES.items():
        package = name.split(".")[0]
        for imported, line in _imports(name, path):
            target = imported.split(".")[0]
            if target not in FLOORS or target == package:
                continue
            if FLOORS[target] >= FLOORS[package]:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert offenders == []


def test_no_lower_floor_imports_the_application_package() -> None:
    # The sharpest case of the rule above, said on its own: the CLI / demo / dev stack is the roof.
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path in MODULES.items()
        if FLOORS[name.split(".")[0]] < FLOORS["lineguard"]
        for imported, line in _imports(name, path)
        if imported.split(".")[0] == "lineguard"
    ]
    assert offenders == []


def test_no_two_modules_import_each_other_in_a_circle() -> None:
    graph = _graph()
    circles = [sorted(component) for component in _strongly_connected(graph) if len(component) > 1]
    assert circles == []


def test_the_floor_check_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    # The checks above are only as good as the import reader: prove it finds both kinds.
    source = "from . import sibling\n\ndef f():\n    from lineguard.cli import app\n"
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    MODULES["workers.sibling"] = MODULES.get("workers.sibling", path)
    try:
        found = {imported for imported, _ in _imports("workers.probe", path)}
    finally:
        if MODULES["workers.sibling"] == path:
            del MODULES["workers.sibling"]
    assert found == {"workers.sibling", "lineguard.cli"}


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the tree is deep enough to matter for recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components
