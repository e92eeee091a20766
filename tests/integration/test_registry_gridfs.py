"""The GridFS model registry against the real MongoDB-protocol server of the stack (FerretDB or mongod):
artifacts tarred into GridFS and fetched back byte for byte, aliases with promote/rollback under concurrent
writers, the cheap revision check workers poll, and live thresholds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.artifact import ArtifactFiles, ModelMetadata, load_metadata, save_artifact
from vision.preprocess import PreprocessSpec
from vision.registry import AliasWatcher
from vision.registry.gridfs import GridFSRegistry
from vision.thresholds import Thresholds, ThresholdStore, set_thresholds

pytestmark = pytest.mark.integration


def make_artifact(root: Path, version: str, payload: bytes) -> Path:
    folder = root / f"det-{version}"
    metadata = ModelMetadata(
        name="det",
        version=version,
        task=Task.DETECTION,
        classes=("scratch", "dent"),
        preprocess=PreprocessSpec.for_input(64, 64),
        files=ArtifactFiles(keras=None),
    )
    save_artifact(folder, metadata)
    (folder / "sub").mkdir()
    (folder / "sub" / "weights.bin").write_bytes(payload)
    return folder


@pytest.fixture
def registry(
    endpoints: Endpoints, mongo_db: Database[dict[str, Any]], tmp_path: Path
) -> Iterator[GridFSRegistry]:
    store = GridFSRegistry(endpoints.mongodb_uri, database=mongo_db.name, cache_dir=tmp_path / "cache")
    yield store
    store.close()


def test_artifacts_round_trip_through_gridfs(registry: GridFSRegistry, tmp_path: Path) -> None:
    # 3 MB of varied bytes spans several GridFS chunks (255 KiB each).
    payload = bytes(range(256)) * 12_000
    registry.publish(make_artifact(tmp_path, "1", payload))
    registry.publish(make_artifact(tmp_path, "2", b"second"))

    assert registry.models() == ["det"]
    assert [v.version for v in registry.versions("det")] == ["1", "2"]
    fetched = registry.fetch("det", "1")
    assert (fetched / "sub" / "weights.bin").read_bytes() == payload
    assert load_metadata(fetched).task is Task.DETECTION
    assert registry.fetch("det", "1") == fetched  # cached, verified by sha256
    with pytest.raises(ConfigurationError, match="already published"):
        registry.publish(make_artifact(tmp_path / "again", "1", b"other"))
    with pytest.raises(ConfigurationError, match="not published"):
        registry.fetch("det", "3")


def test_promote_rollback_and_the_worker_watch(
    registry: GridFSRegistry, endpoints: Endpoints, mongo_db: Database[dict[str, Any]], tmp_path: Path
) -> None:
    for version in ("1", "2", "3"):
        registry.publish(make_artifact(tmp_path, version, version.encode()))
    now = [0.0]
    watcher = AliasWatcher(registry, "line-a", min_interval_s=1.0, clock=lambda: now[0])
    assert watcher.poll() is None  # no production model yet

    registry.promote("*", "det", "1")
    now[0] = 1.0
    assert watcher.poll().version == "1"  # type: ignore[union-attr]  # the fleet default

    operator = GridFSRegistry(endpoints.mongodb_uri, database=mongo_db.name, cache_dir=tmp_path / "op")
    operator.promote("line-a", "det", "2")
    operator.promote("line-a", "det", "3")
    now[0] = 2.0
    assert watcher.poll().version == "3"  # type: ignore[union-attr]
    assert operator.rollback("line-a").version == "2"
    now[0] = 3.0
    assert watcher.poll().version == "2"  # type: ignore[union-attr]
    operator.close()
    history = [(c.line, c.action, c.version) for c in registry.history()]
    assert history == [
        ("*", "promote", "1"),
        ("line-a", "promote", "2"),
        ("line-a", "promote", "3"),
        ("line-a", "rollback", "2"),
    ]
    with pytest.raises(ConfigurationError, match="no earlier production version"):
        registry.rollback("line-a")


def test_concurrent_promotions_lose_nothing(
    registry: GridFSRegistry, endpoints: Endpoints, mongo_db: Database[dict[str, Any]], tmp_path: Path
) -> None:
    for version in ("1", "2"):
        registry.publish(make_artifact(tmp_path, version, b"x"))
    errors: list[BaseException] = []

    def operator(version: str) -> None:
        handle = GridFSRegistry(endpoints.mongodb_uri, database=mongo_db.name, cache_dir=tmp_path / version)
        try:
            for _ in range(5):
                handle.promote("line-b", "det", version)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            handle.close()

    threads = [threading.Thread(target=operator, args=(v,)) for v in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    alias = registry.alias("line-b")
    assert alias is not None and alias.revision == 10 and len(alias.stack) == 10
    assert sorted(c.revision for c in registry.history("line-b")) == list(range(1, 11))


def test_thresholds_are_read_live(
    registry: GridFSRegistry, endpoints: Endpoints, mongo_db: Database[dict[str, Any]]
) -> None:
    now = [0.0]
    store = ThresholdStore(registry, "det", Thresholds(0.5, 0.4), clock=lambda: now[0])
    assert store.lookup("line-a", "cam-1") == Thresholds(0.5, 0.4)
    operator = GridFSRegistry(endpoints.mongodb_uri, database=mongo_db.name)
    set_thresholds(operator, "det", "line-a", Thresholds(0.7, 0.55))
    set_thresholds(operator, "det", "line-a", Thresholds(0.9, 0.8), camera="cam-1")
    operator.close()
    now[0] = 1.5
    assert store.lookup("line-a", "cam-1") == Thresholds(0.9, 0.8)
    assert store.lookup("line-a", "cam-2") == Thresholds(0.7, 0.55)
    assert mongo_db["model_thresholds"].count_documents({"model": "det"}) == 2
