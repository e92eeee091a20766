"""A short ``lineguard demo`` run against the real Kafka and MongoDB: every published frame is accounted for
by a result on the topic and a MongoDB document, and the summary carries what the README promises."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from infra.kafka_topics import delete_topics
from lineguard.demo.run import DemoOptions, DemoRun, LiveStatus
from lineguard.stack.endpoints import Endpoints
from tests.integration.test_workers_support import FRAME_SIZE

pytestmark = pytest.mark.integration

FRAMES = 40

SUMMARY_KEYS = {
    "stopped_by",
    "duration_s",
    "frames_requested",
    "produced",
    "delivered",
    "results",
    "missing_results",
    "duplicate_results",
    "verdicts",
    "defects",
    "defects_by_class",
    "defect_events",
    "dead_letters",
    "dead_letters_by_reason",
    "mongodb_documents",
    "consumer_lag",
    "throughput_fps",
    "latency_ms",
    "accuracy",
    "model",
    "worker",
    "where",
}


@pytest.fixture
def options(
    model_dir: Path, kafka_config: dict[str, Any], mongo_db: Database[dict[str, Any]], tmp_path: Path
) -> Iterator[DemoOptions]:
    demo_options = DemoOptions(
        frames=FRAMES,
        fps=20.0,
        width=FRAME_SIZE,  # the test model was trained on frames of this size
        height=FRAME_SIZE,
        defect_rate=0.4,
        model=model_dir,
        topic_prefix=f"test.demo.{uuid.uuid4().hex[:8]}",
        database=mongo_db.name,
        max_batch_size=8,
        log_dir=tmp_path,
    )
    try:
        yield demo_options
    finally:
        topics = demo_options.topics
        delete_topics(
            kafka_config, [topics.frames, topics.results, topics.defect_events, topics.dead_letters]
        )


def test_a_short_demo_accounts_for_every_frame(
    options: DemoOptions, endpoints: Endpoints, mongo_db: Database[dict[str, Any]]
) -> None:
    updates: list[LiveStatus] = []
    summary = DemoRun(options, endpoints, on_update=updates.append, refresh_s=0.1).run()

    assert set(summary) >= SUMMARY_KEYS
    assert summary["stopped_by"] == "frames"
    assert summary["produced"] == summary["delivered"] == FRAMES
    assert summary["results"] == FRAMES
    assert summary["missing_results"] == 0
    assert summary["dead_letters"] == 0
    assert summary["duplicate_results"] == 0
    assert summary["mongodb_documents"] == FRAMES
    assert mongo_db[options.collection].count_documents({"camera_id": options.camera_id}) == FRAMES
    assert summary["consumer_lag"] == 0
    assert summary["worker"]["exit_code"] == 0

    assert sum(summary["verdicts"].values()) == FRAMES
    flagged = summary["verdicts"].get("DEFECT", 0) + summary["verdicts"].get("UNCERTAIN", 0)
    assert summary["defect_events"] == flagged
    verdict = summary["accuracy"]["verdict"]
    assert verdict["frames"] == FRAMES
    assert verdict["true_positive"] + verdict["false_negative"] == verdict["truly_defective"]
    assert verdict["truly_defective"] > 0  # defect_rate 0.4 over 40 seeded frames
    assert summary["accuracy"]["classes"]["frames"] == FRAMES
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]

    assert summary["where"]["topics"]["results"] == options.topics.results
    assert summary["where"]["mongodb"] == {"database": options.database, "collection": options.collection}
    assert any(update.phase == "running" for update in updates)
    assert updates[-1].snapshot.results == FRAMES


def test_a_second_run_on_the_same_topics_counts_only_its_own_frames(
    options: DemoOptions, endpoints: Endpoints
) -> None:
    first = DemoRun(options, endpoints).run()
    second = DemoRun(options, endpoints).run()  # same topics, same group: continues after the first
    assert first["results"] == second["results"] == FRAMES
    assert second["foreign_results"] == 0
    assert second["mongodb_documents"] == FRAMES
