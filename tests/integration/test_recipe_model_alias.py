"""A recipe that names a model alias: a worker serving its line from the registry switches model on the
changeover signal, without a restart, and back again."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.records import InspectionResult
from schemas.topics import TopicNames
from tests.integration.test_workers_pipeline import _settings, _start
from tests.integration.test_workers_support import decoder, make_frames, produce_frames, read_topic, wait_for
from vision.artifact import load_metadata, write_metadata
from vision.registry import DirectoryRegistry
from workers.recipes import publish_recipe

pytestmark = pytest.mark.integration

BOOK = {"lines": {"line-1": {"default": "A", "recipes": {"A": {}, "B": {"model_alias": "line-1.B"}}}}}


def test_a_changeover_to_a_recipe_with_a_model_alias_swaps_the_model(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    registry = DirectoryRegistry(tmp_path / "registry")
    registry.publish(model_dir)
    second = tmp_path / "t2"
    shutil.copytree(model_dir, second)
    write_metadata(second, load_metadata(second).model_copy(update={"version": "t2"}))
    registry.publish(second)
    registry.promote("line-1", "test-classifier", "t1")  # the line's own alias: recipe A
    registry.promote("line-1.B", "test-classifier", "t2")  # recipe B's alias
    book = tmp_path / "recipes.json"
    book.write_text(json.dumps(BOOK))
    recipe_topic = f"{topics.frames}.recipes-{uuid.uuid4().hex[:6]}"
    settings = _settings(
        topics,
        None,
        line="line-1",
        registry=str(registry.root),
        recipes=book,
        recipe_topic=recipe_topic,  # type: ignore[arg-type]
    )
    running = _start(settings, endpoints, mongo_db.name)

    def serving() -> str | None:
        return None if running.worker.model is None else running.worker.model.metadata.version

    frames = make_frames(30)  # all on line-1
    read = decoder(InspectionResult)
    try:
        produce_frames(kafka_config, topics.frames, frames[:10])
        first = read_topic(kafka_config, topics.results, read, expected=10)
        publish_recipe(kafka_config, recipe_topic, "line-1", "B")
        wait_for(lambda: serving() == "t2", 60, "recipe B's model")
        produce_frames(kafka_config, topics.frames, frames[10:20])
        read_topic(kafka_config, topics.results, read, expected=20)  # all judged under B before it changes
        publish_recipe(kafka_config, recipe_topic, "line-1", "A")
        wait_for(lambda: serving() == "t1", 60, "recipe A's model again")
        produce_frames(kafka_config, topics.frames, frames[20:])
        results = read_topic(kafka_config, topics.results, read, expected=30)
    finally:
        assert running.stop() == 0

    by_frame = {r.identity: r.model.version for r in results}
    assert {r.model.version for r in first} == {"t1"}
    assert len(by_frame) == 30
    assert {by_frame[f.identity] for f in frames[10:20]} == {"t2"}
    assert {by_frame[f.identity] for f in frames[20:]} == {"t1"}
