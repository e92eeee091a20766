"""The worker end to end against real Kafka and MongoDB: every frame gets a result, a document, and (for
defects) an event; offsets are committed; poison records become dead letters."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.records import DefectEvent, InspectionResult, Verdict
from schemas.topics import TopicNames
from tests.integration.test_workers_support import (
    TEST_SESSION_TIMEOUT_MS,
    cached_test_model,
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


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_test_model(tmp_path_factory.getbasetemp())


def _settings(topics: TopicNames, model_dir: Path, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(
        group_id=f"workers-{uuid.uuid4().hex[:8]}",
        model=model_dir,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        max_batch_size=8,
        max_wait_ms=20,
        decode_threads=2,
        inference_threads=1,
        commit_interval_ms=200,
        **overrides,
    ).with_topics(topics)


class RunningWorker:
    """A worker running in this process on a thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.exit_code = self.worker.run()

    def stop(self, timeout_s: float = 60.0) -> int | None:
        self.worker.stop()
        self._thread.join(timeout_s)
        return self.exit_code


def _start(settings: WorkerSettings, endpoints: Endpoints, database: str) -> RunningWorker:
    from lineguard.settings import MongoSettings

    worker = Worker(settings, endpoints=endpoints, mongo=MongoSettings(database=database))
    running = RunningWorker(worker)
    assert worker.wait_started(120), "worker did not start"
    return running


def test_every_frame_gets_a_result_a_document_and_defects_an_event(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
) -> None:
    frames = make_frames(60)
    settings = _settings(topics, model_dir)
    running = _start(settings, endpoints, mongo_db.name)
    try:
        produce_frames(kafka_config, topics.frames, frames)
        results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(frames))
        collection = mongo_db[settings.mongo_collection]
        wait_for(lambda: collection.count_documents({}) >= len(frames), 30, "MongoDB documents")
    finally:
        assert running.stop() == 0

    identities = {(f.camera_id, f.frame_number) for f in frames}
    assert {r.identity for r in results} == identities
    assert len(results) == len(frames)
    assert all(r.model.name == "test-classifier" and r.model.version == "t1" for r in results)
    assert all(1 <= r.batch_size <= 8 for r in results)
    assert {round(sum(s.score for s in r.class_scores), 3) for r in results} == {1.0}

    documents = list(collection.find({}))
    assert len(documents) == len(frames)
    assert {d["_id"] for d in documents} == {f"{c}:{n}:t1" for c, n in identities}
    index_names = set(collection.index_information())
    assert {"line_captured", "verdict_captured", "camera_frame"} <= index_names

    flagged = [r for r in results if r.verdict in (Verdict.DEFECT, Verdict.UNCERTAIN)]
    events = read_topic(kafka_config, topics.defect_events, decoder(DefectEvent), expected=len(flagged))
    assert sorted(e.event_id for e in events) == sorted(f"{r.camera_id}:{r.frame_number}:t1" for r in flagged)
    assert all(region.crop_jpeg.startswith(b"\xff\xd8") for e in events for region in e.regions)

    committed = committed_offsets(kafka_config, settings.group_id, topics.frames)
    assert committed == end_offsets(kafka_config, topics.frames)
