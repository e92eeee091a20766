"""An imported YOLO-style ONNX model (NCHW, letterboxed) served by a real worker, `--device auto`: its boxes
arrive on the results topic mapped onto each 2:1 frame."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest
from pymongo.database import Database

from infra.settings import MongoSettings
from lineguard.stack.endpoints import Endpoints
from schemas.records import Frame, ImageEncoding, InspectionResult, Verdict
from schemas.topics import TopicNames
from tests.integration.test_workers_pipeline import RunningWorker
from tests.integration.test_workers_support import (
    TEST_SESSION_TIMEOUT_MS,
    decoder,
    produce_frames,
    read_topic,
)
from tests.unit.test_model_import import RED, bgr_frame, yolo_model, yolo_options
from vision.model_import import import_onnx
from workers.pipeline import Worker
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration


def _frame(number: int, bgr: tuple[int, int, int]) -> Frame:
    ok, jpeg = cv2.imencode(".jpg", bgr_frame(128, 64, bgr), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return Frame(
        camera_id="cam-wide",
        line_id="line-1",
        station_id="station-1",
        frame_number=number,
        captured_at=datetime.now(UTC),
        width=128,
        height=64,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=jpeg.tobytes(),
    )


def test_a_worker_serves_an_imported_letterboxed_yolo_model(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    tmp_path: Path,
) -> None:
    artifact = tmp_path / "imported"
    options = dataclasses.replace(yolo_options(resize="letterbox"), version="i1")
    import_onnx(yolo_model(tmp_path / "yolo.onnx"), artifact, options)
    settings = WorkerSettings(
        group_id=f"workers-{uuid.uuid4().hex[:8]}",
        model=artifact,
        device="auto",
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        max_wait_ms=20,
        decode_threads=2,
        inference_threads=1,
        commit_interval_ms=200,
    ).with_topics(topics)
    worker = Worker(settings, endpoints=endpoints, mongo=MongoSettings(database=mongo_db.name))
    running = RunningWorker(worker)
    assert worker.wait_started(120), "worker did not start"
    try:
        produce_frames(kafka_config, topics.frames, [_frame(0, RED), _frame(1, (0, 0, 0))])
        results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=2)
    finally:
        assert running.stop() == 0
    by_number = {r.frame_number: r for r in results}
    assert set(by_number) == {0, 1}
    red, black = by_number[0], by_number[1]
    assert red.model.name == "tiny-yolo" and red.verdict is Verdict.DEFECT
    (found,) = red.detections
    assert found.label == "scratch" and found.score > 0.9
    box = found.box
    # anchor 0 covers input y 8..24 of 64; the frame's content is y 16..48: clipped to the top quarter
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx((0.25, 0.0, 0.75, 0.25), abs=1e-3)
    assert not black.detections
    assert black.verdict is Verdict.OK
