"""Decision deadlines against the real stack: a worker whose model is slower than the line allows gives the
late frames the fail-safe decision (``deadline_missed``), inspects the others inside the budget, and gives
every frame exactly one result, one document and a committed offset."""

from __future__ import annotations

import dataclasses
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Producer
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.records import DefectEvent, Frame, InspectionResult, Verdict
from schemas.serde import AvroRecordSerializer
from schemas.topics import TopicNames
from tests.integration.test_workers_pipeline import RunningWorker, _free_port, _settings
from tests.integration.test_workers_support import (
    committed_offsets,
    decoder,
    end_offsets,
    make_frames,
    read_topic,
    wait_for,
)
from vision.outputs import Prediction
from workers.backends import LoadedModel, load_model
from workers.pipeline import Worker

pytestmark = pytest.mark.integration

BUDGET_MS = 400.0
MODEL_DELAY_S = 0.15  # per batch of at most 8: 40 frames at once need ~0.8 s, past the budget


@dataclasses.dataclass(slots=True)
class SlowModel(LoadedModel):
    """The real test model, 150 ms slower per batch (a model too slow for the line's rate)."""

    def predict(self, batch: np.ndarray, image_sizes: Any = None) -> list[Prediction]:
        time.sleep(MODEL_DELAY_S)
        return LoadedModel.predict(self, batch, image_sizes)


def publish(producer: Producer, topic: str, frames: list[Frame]) -> None:
    serialize = AvroRecordSerializer(Frame)
    for frame in frames:
        producer.produce(topic, key=frame.camera_id.encode(), value=serialize(frame))
    assert producer.flush(30) == 0


def test_late_frames_get_the_fail_safe_decision_and_nothing_is_lost(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
) -> None:
    from infra.settings import MongoSettings

    real = load_model(model_dir, threads=1)
    slow = SlowModel(path=real.path, metadata=real.metadata, backend=real.backend)
    # A backlog captured 10 s ago, published before the worker starts: late on arrival, decided at once.
    backlog = [
        dataclasses.replace(f, captured_at=datetime.now(UTC) - timedelta(seconds=10))
        for f in make_frames(30, cameras=("cam-old",), seed=3)
    ]
    # One long-lived producer, like a camera's: a fresh one holds its first records for ~1 s (connection,
    # producer id), which would make the burst below late before it left.
    producer = Producer({**kafka_config, "enable.idempotence": True, "linger.ms": 5})
    publish(producer, topics.frames, backlog)
    port = _free_port()
    settings = _settings(
        topics,
        model_dir,
        deadline_ms=BUDGET_MS,
        deadline_fail_safe="reject",
        metrics_port=port,
        metrics_host="127.0.0.1",
    )
    worker = Worker(settings, endpoints=endpoints, mongo=MongoSettings(database=mongo_db.name), model=slow)
    running = RunningWorker(worker)
    try:
        assert worker.wait_started(120), "worker did not start"
        first = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(backlog))
        assert len(first) == len(backlog)
        # Then a burst captured now: more than the slow model can inspect within the budget.
        now = datetime.now(UTC)  # captured as they are published (generating them takes a while)
        burst = [dataclasses.replace(f, captured_at=now) for f in make_frames(40, cameras=("cam-1", "cam-2"))]
        publish(producer, topics.frames, burst)
        frames = backlog + burst
        results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(frames))
        collection = mongo_db[settings.mongo_collection]
        wait_for(lambda: collection.count_documents({}) >= len(frames), 30, "MongoDB documents")
        wait_for(
            lambda: (
                committed_offsets(kafka_config, settings.group_id, topics.frames)
                == end_offsets(kafka_config, topics.frames)
            ),
            30,
            "committed offsets",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    finally:
        assert running.stop() == 0

    # Exactly one result per frame.
    assert sorted(r.identity for r in results) == sorted((f.camera_id, f.frame_number) for f in frames)
    by_identity = {r.identity: r for r in results}
    old = [by_identity[(f.camera_id, f.frame_number)] for f in backlog]
    new = [by_identity[(f.camera_id, f.frame_number)] for f in burst]
    # The backlog never reached the model: all fail-safe rejects, flagged.
    assert all(r.deadline_missed and r.verdict is Verdict.DEFECT for r in old)
    assert all(r.metadata["fail_safe"] == "reject" and r.metadata["deadline_ms"] == "400" for r in old)
    # The burst: the model could not keep up, so some were decided fail-safe; the inspected ones were
    # inspected inside the budget.
    missed = [r for r in new if r.deadline_missed]
    inspected = [r for r in new if not r.deadline_missed]
    assert missed and all(r.verdict is Verdict.DEFECT and not r.class_scores for r in missed)
    assert inspected  # the first batch of the burst had time
    assert all(
        (r.inferred_at - r.captured_at).total_seconds() * 1000 <= BUDGET_MS and r.class_scores
        for r in inspected
    )
    # Documents: one per frame, the flag stored.
    documents = list(collection.find({}, {"deadline_missed": 1}))
    assert len(documents) == len(frames)
    assert sum(bool(d["deadline_missed"]) for d in documents) == len(old) + len(missed)
    # No defect event for a fail-safe reject (no region to show); the counter and histograms say it.
    flagged = [r for r in inspected if r.verdict in (Verdict.DEFECT, Verdict.UNCERTAIN)]
    events = read_topic(kafka_config, topics.defect_events, decoder(DefectEvent), expected=len(flagged))
    assert sorted(e.frame_number for e in events if e.camera_id != "cam-old") == sorted(
        r.frame_number for r in flagged
    ) and not any(e.camera_id == "cam-old" for e in events)
    total_missed = len(old) + len(missed)
    assert f'lineguard_worker_deadline_missed_total{{decision="reject",line="line-1"}} {total_missed}.0' in (
        metrics
    )
    assert (
        f'lineguard_worker_line_decision_seconds_count{{line="line-1",outcome="fail_safe"}} {total_missed}.0'
        in metrics
    )
