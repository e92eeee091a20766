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


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _http(port: int, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.read().decode())


def _start(settings: WorkerSettings, endpoints: Endpoints, database: str) -> RunningWorker:
    from infra.settings import MongoSettings

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
    port = _free_port()
    settings = _settings(topics, model_dir, metrics_port=port, metrics_host="127.0.0.1")
    running = _start(settings, endpoints, mongo_db.name)
    try:
        produce_frames(kafka_config, topics.frames, frames)
        results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(frames))
        collection = mongo_db[settings.mongo_collection]
        wait_for(lambda: collection.count_documents({}) >= len(frames), 30, "MongoDB documents")
        wait_for(lambda: "consumer_lag{" in _http(port, "/metrics"), 30, "the lag gauge")
        metrics = _http(port, "/metrics")
        ready = _http(port, "/ready")
    finally:
        assert running.stop() == 0

    assert ready == "ready\n"
    assert "lineguard_worker_frames_in_total 60.0" in metrics
    assert "lineguard_worker_results_out_total 60.0" in metrics
    assert f'lineguard_worker_consumer_lag{{partition="1",topic="{topics.frames}"}}' in metrics
    assert 'lineguard_worker_model_info{backend="onnxruntime",name="test-classifier"' in metrics

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


def _encode(image: Any, ext: str) -> bytes:
    import cv2

    ok, data = cv2.imencode(ext, image)
    assert ok
    return bytes(data.tobytes())


def test_poison_records_become_dead_letters_with_their_reason_and_the_worker_keeps_going(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
) -> None:
    import dataclasses

    import numpy as np

    from schemas.records import DeadLetter, DeadLetterReason, ImageEncoding, ImageReference
    from schemas.serde import AvroRecordSerializer
    from tests.integration.test_workers_support import produce

    serialize = AvroRecordSerializer(type(make_frames(1)[0]))
    good = make_frames(6, cameras=("cam-ok",))
    template = good[0]
    big = np.full((200, 200, 3), 90, np.uint8)
    png = dataclasses.replace(
        good[1],
        frame_number=1000,
        encoding=ImageEncoding.PNG,
        image=_encode(np.full((128, 128, 3), 80, np.uint8), ".png"),
    )
    poison = {
        DeadLetterReason.UNDECODABLE_RECORD: b"this is not avro",
        DeadLetterReason.UNKNOWN_SCHEMA: b"\xc3\x01" + bytes(range(8)) + b"\x00\x00",
        DeadLetterReason.CORRUPT_IMAGE: serialize(
            dataclasses.replace(template, frame_number=2000, image=b"\xff\xd8\xff\xe0" + bytes(300))
        ),
        DeadLetterReason.EMPTY_IMAGE: serialize(dataclasses.replace(template, frame_number=2001, image=b"")),
        DeadLetterReason.WRONG_DIMENSIONS: serialize(
            dataclasses.replace(template, frame_number=2002, width=100)
        ),
        DeadLetterReason.OVERSIZE: serialize(
            dataclasses.replace(
                template, frame_number=2003, width=200, height=200, image=_encode(big, ".jpg")
            )
        ),
        DeadLetterReason.CLAIM_CHECK_FAILED: serialize(
            dataclasses.replace(
                template,
                frame_number=2004,
                image=b"",
                image_ref=ImageReference(
                    uri=f"gridfs://{mongo_db.name}/frames/{'ab' * 32}", sha256="ab" * 32, size_bytes=1234
                ),
            )
        ),
    }
    settings = _settings(topics, model_dir, max_image_pixels=20_000)
    running = _start(settings, endpoints, mongo_db.name)
    try:
        headers_probe = [(b"cam-bad", value) for value in poison.values()]
        produce(kafka_config, topics.frames, headers_probe)
        produce_frames(kafka_config, topics.frames, [*good, png])
        letters = read_topic(kafka_config, topics.dead_letters, decoder(DeadLetter), expected=len(poison))
        results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(good) + 1)
        assert running.worker.ready
    finally:
        assert running.stop() == 0

    assert sorted(letter.reason for letter in letters) == sorted(poison)
    by_reason = {letter.reason: letter for letter in letters}
    for reason, value in poison.items():
        letter = by_reason[reason]
        assert letter.original_value == value
        assert letter.original_key == b"cam-bad"
        assert letter.source.topic == topics.frames
        assert letter.worker_id == settings.worker_id
        assert letter.error_message
    assert by_reason[DeadLetterReason.UNKNOWN_SCHEMA].error_class == "UnknownSchemaError"
    assert {r.frame_number for r in results} == {f.frame_number for f in [*good, png]}
    counted = running.worker.metrics.dead_letters
    assert sum(counted.labels(reason.value)._value.get() for reason in poison) == len(poison)
    assert committed_offsets(kafka_config, settings.group_id, topics.frames) == end_offsets(
        kafka_config, topics.frames
    )


def test_worker_follows_the_registry_production_alias_and_live_thresholds(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    import shutil

    from vision.artifact import load_metadata, write_metadata
    from vision.registry import DirectoryRegistry
    from vision.thresholds import Thresholds, set_thresholds

    registry = DirectoryRegistry(tmp_path / "registry")
    registry.publish(model_dir)
    second = tmp_path / "t2"
    shutil.copytree(model_dir, second)
    write_metadata(second, load_metadata(second).model_copy(update={"version": "t2"}))
    registry.publish(second)
    registry.promote("line-1", "test-classifier", "t1")

    settings = _settings(topics, None, line="line-1", registry=str(registry.root))  # type: ignore[arg-type]
    running = _start(settings, endpoints, mongo_db.name)
    frames = make_frames(60)  # all on line-1
    try:
        produce_frames(kafka_config, topics.frames, frames[:20])
        first = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=20)
        assert {r.model.version for r in first} == {"t1"}

        registry.promote("line-1", "test-classifier", "t2")
        # Everything is a defect on camera cam-a from now on: thresholds changed without touching the model.
        set_thresholds(
            registry, "test-classifier", "line-1", Thresholds(defect=0.0, uncertain=0.0), camera="cam-a"
        )
        wait_for(
            lambda: running.worker.model is not None and running.worker.model.metadata.version == "t2",
            30,
            "t2",
        )
        produce_frames(kafka_config, topics.frames, frames[20:])
        results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=60)
    finally:
        assert running.stop() == 0

    later = [r for r in results if r.identity in {f.identity for f in frames[20:]}]
    assert len(later) == 40
    assert {r.model.version for r in later} == {"t2"}
    assert {r.verdict for r in later if r.camera_id == "cam-a"} == {Verdict.DEFECT}
