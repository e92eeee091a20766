"""Helpers for the shadow tests (no tests here): a registry with production and candidate versions of the
test model, and shadow workers on a test's topics."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.kafka_topics import delete_topics
from infra.settings import MongoSettings
from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from tests.integration.test_workers_support import TEST_SESSION_TIMEOUT_MS
from vision.artifact import load_metadata, write_metadata
from vision.registry import DirectoryRegistry
from workers.settings import WorkerSettings
from workers.shadow.config import shadow_topics

MODEL = "test-classifier"


def variant(model_dir: Path, root: Path, version: str, **changes: Any) -> Path:
    """A copy of the test model under another version (same weights), with ``changes`` to model.json."""
    target = root / f"artifact-{version}"
    if not target.exists():
        shutil.copytree(model_dir, target)
        metadata = load_metadata(target)
        write_metadata(target, metadata.model_copy(update={"version": version, **changes}))
    return target


def registry_with(model_dir: Path, root: Path) -> DirectoryRegistry:
    """t1 in production on line-1; candidates t2 (the same model) and t3 (never says DEFECT)."""
    registry = DirectoryRegistry(root / "registry")
    registry.publish(model_dir)
    registry.publish(variant(model_dir, root, "t2"))
    registry.publish(variant(model_dir, root, "t3", thresholds={"defect": 2.0}))
    registry.promote("line-1", MODEL, "t1")
    return registry


def worker_settings(topics: TopicNames, group: str, model: Path | None, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(
        group_id=group,
        model=model,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        max_batch_size=8,
        max_wait_ms=20,
        decode_threads=2,
        inference_threads=1,
        commit_interval_ms=200,
        **overrides,
    ).with_topics(topics)


def mongo(database: str) -> MongoSettings:
    return MongoSettings(database=database)


@contextmanager
def shadow_topics_cleaned(kafka_config: dict[str, Any], topics: TopicNames) -> Iterator[TopicNames]:
    """The shadow topics the shadow worker creates next to the test's frames topic, deleted afterwards."""
    names = shadow_topics(topics.frames)
    try:
        yield names
    finally:
        delete_topics(kafka_config, [names.results, names.defect_events, names.dead_letters])


def env_for(endpoints: Endpoints, database: str, topics: TopicNames, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "MONGODB_URI": endpoints.mongodb_uri,
        "LINEGUARD_MONGODB_DATABASE": database,
        "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
        "LINEGUARD_WORKER_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "LINEGUARD_WORKER_MAX_BATCH_SIZE": "8",
        "LINEGUARD_WORKER_DECODE_THREADS": "2",
        "LINEGUARD_WORKER_INFERENCE_THREADS": "1",
        "LINEGUARD_WORKER_COMMIT_INTERVAL_MS": "200",
        **extra,
    }
