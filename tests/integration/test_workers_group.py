"""A consumer group of workers: two split the partitions; a third joining and one leaving lose nothing."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from infra.settings import MongoSettings
from lineguard.stack.endpoints import Endpoints
from schemas.records import InspectionResult
from schemas.topics import TopicNames
from tests.integration.test_workers_support import (
    TEST_SESSION_TIMEOUT_MS,
    committed_offsets,
    decoder,
    end_offsets,
    make_frames,
    produce_frames,
    read_topic,
    wait_for,
)
from workers.pipeline import Worker
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

CAMERAS = tuple(f"cam-{n}" for n in range(9))


class GroupMember:
    def __init__(self, name: str, settings: WorkerSettings, endpoints: Endpoints, database: str) -> None:
        self.worker = Worker(
            settings.model_copy(update={"worker_id": name}),
            endpoints=endpoints,
            mongo=MongoSettings(database=database),
        )
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.worker.wait_started(120)

    def _run(self) -> None:
        self.exit_code = self.worker.run()

    def stop(self) -> int | None:
        self.worker.stop()
        self._thread.join(60)
        return self.exit_code


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_workers_split_partitions_and_a_joining_and_leaving_member_loses_nothing(
    exactly_once: bool,
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
) -> None:
    settings = WorkerSettings(
        group_id=f"group-{uuid.uuid4().hex[:8]}",
        model=model_dir,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        max_batch_size=8,
        max_wait_ms=20,
        decode_threads=1,
        inference_threads=1,
        commit_interval_ms=200,
        exactly_once=exactly_once,
    ).with_topics(topics)
    frames = make_frames(450, cameras=CAMERAS)
    collection = mongo_db[settings.mongo_collection]
    members = [GroupMember(f"w{n}", settings, endpoints, mongo_db.name) for n in (1, 2)]
    try:
        wait_for(lambda: all(m.worker.assignment for m in members), 60, "both workers to own partitions")
        first, second = (m.worker.assignment for m in members)
        assert not first & second
        assert {p for _, p in first | second} == {0, 1, 2}

        produce_frames(kafka_config, topics.frames, frames[:150])
        wait_for(lambda: collection.count_documents({}) >= 50, 60, "processing to start")
        members.append(GroupMember("w3", settings, endpoints, mongo_db.name))  # joins mid-stream
        produce_frames(kafka_config, topics.frames, frames[150:300])
        wait_for(lambda: bool(members[2].worker.assignment), 60, "the third worker to get partitions")
        assert members.pop(0).stop() == 0  # leaves mid-stream, draining what it holds
        produce_frames(kafka_config, topics.frames, frames[300:])
        wait_for(lambda: collection.count_documents({}) >= len(frames), 120, "every frame's document")
        wait_for(
            lambda: (
                committed_offsets(kafka_config, settings.group_id, topics.frames)
                == end_offsets(kafka_config, topics.frames)
            ),
            30,
            "every offset committed",
        )
    finally:
        exit_codes = [member.stop() for member in members]
    assert exit_codes == [0, 0]

    results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(frames))
    assert {r.identity for r in results} == {f.identity for f in frames}
    if exactly_once:  # rebalances included: not one duplicate under read_committed
        assert len(results) == len(frames)
    assert collection.count_documents({}) == len(frames)
    assert {r.worker_id for r in results} >= {"w2", "w3"}
