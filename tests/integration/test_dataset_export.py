"""`lineguard dataset export` round trip against the real Kafka and MongoDB: frames produced to the frames
topic, results written as the workers write them (MongoDB documents and the results topic), corrected labels
in a `labels` collection; exported into a folder-per-class training set that the dataset loader reads back
with the original image bytes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from pymongo.database import Database
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.stack.endpoints import Endpoints
from schemas.records import (
    ClassScore,
    Frame,
    GroundTruth,
    ImageEncoding,
    InspectionResult,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)
from schemas.serde import AvroRecordSerializer
from schemas.topics import TopicNames
from vision.datasets import load_dataset
from vision.export_dataset import ExportLayout, ExportSources, run_export
from workers.sinks.mongo import inspection_document

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def make_frame(camera: str, number: int, truth: str | None = None) -> Frame:
    rng = np.random.default_rng(number + 100 * len(camera))
    if number % 2:
        pixels = rng.integers(0, 255, (24 + number, 32, 3), dtype=np.uint8)
        encoded, encoding = cv2.imencode(".jpg", pixels)[1].tobytes(), ImageEncoding.JPEG
    else:
        pixels = rng.integers(0, 255, (20, 28 + number), dtype=np.uint8)
        encoded, encoding = cv2.imencode(".png", pixels)[1].tobytes(), ImageEncoding.PNG
    return Frame(
        camera_id=camera,
        line_id="L1",
        station_id="s1",
        frame_number=number,
        captured_at=START + timedelta(seconds=number),
        width=pixels.shape[1],
        height=pixels.shape[0],
        channels=1 if pixels.ndim == 2 else 3,
        encoding=encoding,
        image=encoded,
        ground_truth=None if truth is None else GroundTruth(labels=(truth,)),
    )


def make_result(
    camera: str, number: int, verdict: Verdict, scores: dict[str, float], version: str = "1", minutes: int = 1
) -> InspectionResult:
    captured = START + timedelta(seconds=number)
    return InspectionResult(
        camera_id=camera,
        line_id="L1",
        station_id="s1",
        frame_number=number,
        source=KafkaCoordinates(topic="frames", partition=0, offset=number),
        model=ModelInfo(name="cls", version=version, task=Task.CLASSIFICATION),
        verdict=verdict,
        class_scores=tuple(ClassScore(label=k, score=v) for k, v in scores.items()),
        captured_at=captured,
        received_at=captured,
        inferred_at=captured + timedelta(minutes=minutes),
        batch_size=4,
        worker_id="w1",
    )


FRAMES = [make_frame("cam-1", n) for n in range(6)] + [make_frame("cam-2", 0, truth="dent")]
RESULTS = [
    make_result("cam-1", 0, Verdict.OK, {"good": 0.9, "scratch": 0.1}),
    make_result("cam-1", 1, Verdict.OK, {"good": 0.8, "scratch": 0.2}),
    # An older model version called frame 2 OK; the newer one (inferred later) found a scratch.
    make_result("cam-1", 2, Verdict.OK, {"good": 0.7, "scratch": 0.3}, version="0", minutes=0),
    make_result("cam-1", 2, Verdict.DEFECT, {"good": 0.1, "scratch": 0.9}),
    make_result("cam-1", 3, Verdict.UNCERTAIN, {"good": 0.5, "scratch": 0.5}),
    make_result("cam-1", 4, Verdict.OK, {"good": 0.6, "scratch": 0.4}),  # a person says: dent
    make_result("cam-2", 0, Verdict.OK, {"good": 0.9, "scratch": 0.1}),  # the frame's ground truth: dent
    make_result("cam-1", 99, Verdict.OK, {"good": 1.0, "scratch": 0.0}),  # its frame has left the topic
]
# cam-1#5 has no result at all.


def produce(kafka_config: dict[str, Any], topic: str, records: list[Any], record_cls: type) -> None:
    serialize: AvroRecordSerializer[Any] = AvroRecordSerializer(record_cls)
    producer = Producer({**kafka_config, "enable.idempotence": True})
    for record in records:
        value = serialize(record, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=record.camera_id.encode(), value=value)
    assert producer.flush(30) == 0


def digest_by_name(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("*/*") if p.is_file()}


@pytest.fixture
def production(
    kafka_config: dict[str, Any], topics: TopicNames, mongo_db: Database[dict[str, Any]]
) -> Database[dict[str, Any]]:
    produce(kafka_config, topics.frames, FRAMES, Frame)
    produce(kafka_config, topics.results, RESULTS, InspectionResult)
    mongo_db["inspections"].insert_many([inspection_document(r) for r in RESULTS])
    mongo_db["labels"].insert_one(
        {"_id": "cam-1:4", "camera_id": "cam-1", "frame_number": 4, "label": "dent", "labelled_at": START}
    )
    return mongo_db


def test_export_from_mongodb_round_trips_into_the_loader(
    production: Database[dict[str, Any]],
    kafka_config: dict[str, Any],
    topics: TopicNames,
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    sources = ExportSources(
        kafka_config=kafka_config,
        frames_topic=topics.frames,
        results_topic=topics.results,
        mongodb_uri=endpoints.mongodb_uri,
        database=production.name,
    )
    out = tmp_path / "train"

    summary = run_export(sources, out, "mongodb")

    assert dict(summary.written) == {"good": 2, "scratch": 1, "dent": 2}
    assert dict(summary.sources) == {"model": 3, "correction": 1, "ground_truth": 1}
    assert summary.skipped == {"verdict_uncertain": 1, "no_result": 1, "result_without_frame": 1}
    dataset = load_dataset(out, "classify", "folder")
    assert dataset.classes == ("good", "dent", "scratch")
    labels = {s.key: s.label for s in dataset.samples}
    assert labels == {
        "good/cam-1_0000000000.png": "good",
        "good/cam-1_0000000001.jpg": "good",
        "scratch/cam-1_0000000002.png": "scratch",
        "dent/cam-1_0000000004.png": "dent",
        "dent/cam-2_0000000000.png": "dent",
    }
    originals = {f"{f.camera_id}_{f.frame_number:010d}": hashlib.sha256(f.image).hexdigest() for f in FRAMES}
    assert all(originals[name.rsplit(".", 1)[0]] == digest for name, digest in digest_by_name(out).items())
    assert all(sample.load_image().size > 0 for sample in dataset.samples)

    # A person corrects frame 4 again: exporting into the same folder moves it instead of copying it.
    production["labels"].insert_one(
        {
            "camera_id": "cam-1",
            "frame_number": 4,
            "label": "scratch",
            "labelled_at": START + timedelta(hours=1),
        }
    )
    run_export(sources, out, "mongodb")
    assert not (out / "dent" / "cam-1_0000000004.png").exists()
    assert (out / "scratch" / "cam-1_0000000004.png").is_file()
    assert len(digest_by_name(out)) == 5
    assert len((out / "export.jsonl").read_text().splitlines()) == 5


def test_export_command_from_the_results_topic(
    production: Database[dict[str, Any]],
    topics: TopicNames,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINEGUARD_MONGODB_DATABASE", production.name)
    out = tmp_path / "train"
    prefix = topics.frames.removesuffix(".frames")
    result = CliRunner().invoke(
        app,
        [
            "dataset",
            "export",
            "--from",
            "topic",
            "--topic-prefix",
            prefix,
            "--out",
            str(out),
            "--model-version",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    counts = {folder.name: len(list(folder.iterdir())) for folder in out.iterdir() if folder.is_dir()}
    # Version 1 only; frame 2 is a scratch either way, frame 4 is corrected to dent, cam-2#0 is a dent.
    assert counts == {"good": 2, "scratch": 1, "dent": 2}
    assert len(load_dataset(out, "classify", "folder")) == 5


def test_export_in_voc_layout_for_detection_retraining(
    production: Database[dict[str, Any]],
    kafka_config: dict[str, Any],
    topics: TopicNames,
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    # A person draws the scratch on frame 2. The classifier's results carry no boxes, so defect frames without
    # a drawn box (frame 4's label-only correction, cam-2's ground truth) cannot train a detector: skipped.
    box = {"label": "scratch", "x_min": 0.25, "y_min": 0.5, "x_max": 0.75, "y_max": 1.0}
    production["labels"].insert_one(
        {"camera_id": "cam-1", "frame_number": 2, "label": "scratch", "boxes": [box], "labelled_at": START}
    )
    sources = ExportSources(
        kafka_config, topics.frames, topics.results, endpoints.mongodb_uri, production.name
    )
    out = tmp_path / "voc"

    summary = run_export(sources, out, "mongodb", layout=ExportLayout.voc)

    assert dict(summary.written) == {"good": 2, "scratch": 1}
    assert summary.skipped["defect_without_boxes"] == 2
    dataset = load_dataset(out, "detect", "voc")
    boxes = {s.key: s.boxes for s in dataset.samples}
    assert sorted(boxes) == ["cam-1_0000000000.png", "cam-1_0000000001.jpg", "cam-1_0000000002.png"]
    assert boxes["cam-1_0000000000.png"] == () and boxes["cam-1_0000000001.jpg"] == ()
    (drawn,) = boxes["cam-1_0000000002.png"]
    # Frame 2 is 30x20 pixels: VOC stores whole pixels, so corners come back within one pixel.
    corners = (drawn.x_min, drawn.y_min, drawn.x_max, drawn.y_max)
    assert drawn.label == "scratch" and corners == pytest.approx((0.25, 0.5, 0.75, 1.0), abs=1 / 30)
