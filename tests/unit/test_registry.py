"""The directory model registry: immutable versions, a production alias per line with promote/rollback
history, the fleet default alias, and the cheap change check workers poll between batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.artifact import ArtifactFiles, ModelMetadata, load_metadata, save_artifact
from vision.preprocess import PreprocessSpec
from vision.registry import AliasWatcher, DirectoryRegistry, open_registry


def make_artifact(root: Path, name: str, version: str, payload: bytes = b"\x00weights\xff") -> Path:
    folder = root / f"{name}-{version}"
    metadata = ModelMetadata(
        name=name,
        version=version,
        task=Task.CLASSIFICATION,
        classes=("good", "scratch"),
        preprocess=PreprocessSpec.for_input(32, 32),
        files=ArtifactFiles(keras=None),
    )
    save_artifact(folder, metadata)
    (folder / "weights.bin").write_bytes(payload)
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> DirectoryRegistry:
    store = DirectoryRegistry(tmp_path / "registry")
    for version in ("1", "2", "3"):
        store.publish(make_artifact(tmp_path, "cls", version, payload=version.encode() * 100))
    return store


def test_publish_keeps_versions_immutable_and_fetchable(registry: DirectoryRegistry, tmp_path: Path) -> None:
    assert registry.models() == ["cls"]
    assert [v.version for v in registry.versions("cls")] == ["1", "2", "3"]
    assert registry.versions("cls")[0].task == "classify"
    fetched = registry.fetch("cls", "2")
    assert load_metadata(fetched).version == "2"
    assert (fetched / "weights.bin").read_bytes() == b"2" * 100
    with pytest.raises(ConfigurationError, match="already published"):
        registry.publish(make_artifact(tmp_path / "again", "cls", "2"))
    with pytest.raises(ConfigurationError, match="not published"):
        registry.fetch("cls", "9")


def test_promote_and_rollback_walk_the_production_history(registry: DirectoryRegistry) -> None:
    assert registry.current_production("line-1") is None
    registry.promote("line-1", "cls", "1")
    registry.promote("line-1", "cls", "2")
    third = registry.promote("line-1", "cls", "3")
    assert (third.version, third.revision, third.previous) == ("3", 3, ("cls", "2"))

    back = registry.rollback("line-1")
    assert (back.version, back.revision) == ("2", 4)
    assert registry.rollback("line-1").version == "1"
    with pytest.raises(ConfigurationError, match="no earlier production version"):
        registry.rollback("line-1")
    assert registry.current_production("line-1").version == "1"  # type: ignore[union-attr]
    actions = [(c.action, c.version, c.replaced) for c in registry.history("line-1")]
    assert actions == [
        ("promote", "1", None),
        ("promote", "2", "cls:1"),
        ("promote", "3", "cls:2"),
        ("rollback", "2", "cls:3"),
        ("rollback", "1", "cls:2"),
    ]


def test_unknown_versions_and_bad_names_are_refused(registry: DirectoryRegistry) -> None:
    with pytest.raises(ConfigurationError, match="has no version 7"):
        registry.promote("line-1", "cls", "7")
    with pytest.raises(ConfigurationError, match="invalid line"):
        registry.promote("../etc", "cls", "1")


def test_lines_without_an_alias_follow_the_fleet_default(registry: DirectoryRegistry) -> None:
    registry.promote("*", "cls", "1")
    registry.promote("line-2", "cls", "3")
    assert registry.current_production("line-9").version == "1"  # type: ignore[union-attr]
    assert registry.current_production("line-2").version == "3"  # type: ignore[union-attr]
    assert [a.line for a in registry.aliases()] == ["*", "line-2"]


def test_watcher_reports_a_promotion_once_and_only_after_its_interval(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "registry")
    for version in ("1", "2"):
        registry.publish(make_artifact(tmp_path, "det", version))
    registry.promote("line-1", "det", "1")
    now = [0.0]
    watcher = AliasWatcher(registry, "line-1", min_interval_s=1.0, clock=lambda: now[0])

    first = watcher.poll()
    assert first is not None and first.version == "1"
    assert watcher.poll() is None  # nothing changed
    # A second process (the CLI) promotes; the watcher waits for its interval, then sees it exactly once.
    DirectoryRegistry(tmp_path / "registry").promote("line-1", "det", "2")
    assert watcher.poll() is None
    now[0] = 1.5
    changed = watcher.poll()
    assert changed is not None and changed.version == "2"
    now[0] = 3.0
    assert watcher.poll() is None
    # Another line's change moves the shared file but not this line's model.
    registry.promote("line-2", "det", "1")
    now[0] = 4.5
    assert watcher.poll() is None


def test_watcher_reports_again_after_a_failed_load(registry: DirectoryRegistry) -> None:
    registry.promote("line-1", "cls", "1")
    now = [0.0]
    watcher = AliasWatcher(registry, "line-1", clock=lambda: now[0])
    assert watcher.poll().version == "1"  # type: ignore[union-attr]
    registry.promote("line-1", "cls", "2")
    now[0] = 1.0
    assert watcher.poll().version == "2"  # type: ignore[union-attr]
    watcher.retry(("cls", "1"))  # version 2 would not load: the worker still serves 1
    now[0] = 2.0
    assert watcher.poll().version == "2"  # type: ignore[union-attr]


def test_watcher_survives_a_broken_registry(tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "registry")
    registry.publish(make_artifact(tmp_path, "det", "1"))
    registry.promote("line-1", "det", "1")
    now = [0.0]
    watcher = AliasWatcher(registry, "line-1", clock=lambda: now[0])
    assert watcher.poll() is not None
    (tmp_path / "registry" / "aliases.json").write_text("{half written")
    now[0] = 2.0
    assert watcher.poll() is None  # logged, and the worker keeps its model


def test_models_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    where = str(tmp_path / "reg")
    for version in ("a1", "a2"):
        result = runner.invoke(
            app, ["models", "publish", str(make_artifact(tmp_path, "cls", version)), "--registry", where]
        )
        assert result.exit_code == 0, result.output
    promote = ["models", "promote", "--model", "cls", "--line", "L1", "--registry", where]
    assert runner.invoke(app, [*promote, "--version", "a1"]).exit_code == 0
    # The line runs a1 now: a2 has no shadow report, so the gate refuses it unless forced with a reason.
    refused = runner.invoke(app, [*promote, "--version", "a2"])
    assert isinstance(refused.exception, ConfigurationError)  # the CLI's main() turns it into exit 2
    assert runner.invoke(app, [*promote, "--version", "a2", "--force", "--reason", "test"]).exit_code == 0
    assert runner.invoke(app, ["models", "rollback", "--line", "L1", "--registry", where]).exit_code == 0
    listing = runner.invoke(app, ["models", "list", "--history", "--registry", where], env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and "rollback" in listing.output
    aliases = json.loads((tmp_path / "reg" / "aliases.json").read_text())
    assert aliases["L1"]["version"] == "a1" and aliases["L1"]["revision"] == 3
    assert isinstance(open_registry(where), DirectoryRegistry)
    fetched = tmp_path / "fetched"
    result = runner.invoke(
        app, ["models", "fetch", "--model", "cls", "--line", "L1", "--out", str(fetched), "--registry", where]
    )
    assert result.exit_code == 0, result.output
    assert load_metadata(fetched).version == "a1" and not (fetched / ".registry.json").exists()


def test_concurrent_promotions_through_separate_handles_lose_nothing(registry: DirectoryRegistry) -> None:
    import threading

    def operator(version: str) -> None:
        handle = DirectoryRegistry(registry.root)  # its own lock file descriptor, as another process has
        for _ in range(10):
            handle.promote("line-c", "cls", version)

    threads = [threading.Thread(target=operator, args=(v,)) for v in ("1", "2", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    alias = registry.alias("line-c")
    assert alias is not None and alias.revision == 30 and len(alias.stack) == 30
    assert [c.revision for c in registry.history("line-c")] == list(range(1, 31))


def test_gridfs_cache_install_keeps_a_valid_copy_another_worker_may_be_loading(tmp_path: Path) -> None:
    from vision.registry.gridfs import GridFSRegistry

    def folder(name: str, marker: str, content: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / ".sha256").write_text(marker)
        (path / "model.json").write_text(content)
        return path

    target = folder("target", "abc", "installed by the first worker")
    GridFSRegistry._install(folder("staging-1", "abc", "ours"), target, "abc")
    assert (target / "model.json").read_text() == "installed by the first worker"
    assert not (tmp_path / "staging-1").exists()

    stale = folder("stale", "old", "stale")
    GridFSRegistry._install(folder("staging-2", "new", "fresh"), stale, "new")
    assert (stale / "model.json").read_text() == "fresh"

    GridFSRegistry._install(folder("staging-3", "x", "first install"), tmp_path / "empty-target", "x")
    assert (tmp_path / "empty-target" / "model.json").read_text() == "first install"
