"""Recipe changeover against the real stack: a worker judges a line's frames with its recipe's thresholds and,
after one signal on the recipe topic, with the new recipe's, without a restart."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.records import InspectionResult, Verdict
from schemas.topics import TopicNames
from tests.integration.test_workers_pipeline import _settings, _start
from tests.integration.test_workers_support import decoder, make_frames, produce_frames, read_topic, wait_for
from workers.recipes import follow_recipes, publish_recipe

pytestmark = pytest.mark.integration

# Recipe STRICT rejects everything (every score >= 0), LENIENT passes everything (no score reaches 1.5).
BOOK = {
    "lines": {
        "line-1": {
            "default": "STRICT",
            "recipes": {
                "STRICT": {"thresholds": {"defect": 0.0, "uncertain": 0.0}},
                "LENIENT": {"thresholds": {"defect": 1.5, "uncertain": 1.5}},
            },
        }
    }
}


def test_a_signal_on_the_recipe_topic_switches_the_thresholds_without_a_restart(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    book = tmp_path / "recipes.json"
    book.write_text(json.dumps(BOOK))
    recipe_topic = f"{topics.frames}.recipes-{uuid.uuid4().hex[:6]}"
    settings = _settings(topics, model_dir, recipes=book, recipe_topic=recipe_topic)
    running = _start(settings, endpoints, mongo_db.name)
    try:
        before = make_frames(12, seed=21)
        produce_frames(kafka_config, topics.frames, before)
        first = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(before))

        publish_recipe(kafka_config, recipe_topic, "line-1", "NO-SUCH-RECIPE")  # ignored: keeps STRICT
        publish_recipe(kafka_config, recipe_topic, "line-1", "LENIENT")
        state = follow_recipes(book, recipe_topic, kafka_config)  # the worker's own (one per process)
        wait_for(lambda: state.current("line-1") == "LENIENT", 60, "the changeover signal")
        after = make_frames(12, cameras=("cam-x", "cam-y"), seed=22)
        produce_frames(kafka_config, topics.frames, after)
        everything = read_topic(
            kafka_config, topics.results, decoder(InspectionResult), expected=len(before) + len(after)
        )
    finally:
        assert running.stop() == 0

    assert len(first) == len(before) and {r.verdict for r in first} == {Verdict.DEFECT}
    later = [r for r in everything if r.camera_id in ("cam-x", "cam-y")]
    assert len(later) == len(after) and {r.verdict for r in later} == {Verdict.OK}
    assert state.changes == 1
