"""The pure half of `lineguard dataset export`: which label a frame gets, which result wins, and how frames
are written (the Kafka + MongoDB round trip is in tests/integration/test_dataset_export.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.records import (
    Box,
    ClassScore,
    Detection,
    Frame,
    GroundTruth,
    ImageEncoding,
    InspectionResult,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)
from vision.datasets import load_dataset
from vision.export_dataset import (
    Correction,
    ExportFilter,
    ExportLayout,
    export_frames,
    index_results,
    label_from_result,
)
from vision.samples import BoxLabel

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def result(
    number: int,
    verdict: Verdict,
    scores: dict[str, float] | None = None,
    detections: tuple[Detection, ...] = (),
    version: str = "1",
    inferred_minutes: int = 0,
    line: str = "L1",
) -> InspectionResult:
    return InspectionResult(
        camera_id="cam",
        line_id=line,
        station_id="s",
        frame_number=number,
        source=KafkaCoordinates(topic="frames", partition=0, offset=number),
        model=ModelInfo(name="m", version=version, task=Task.CLASSIFICATION),
        verdict=verdict,
        class_scores=tuple(ClassScore(label=k, score=v) for k, v in (scores or {}).items()),
        detections=detections,
        captured_at=T0 + timedelta(seconds=number),
        received_at=T0,
        inferred_at=T0 + timedelta(minutes=inferred_minutes),
        batch_size=1,
        worker_id="w",
    )


def frame(
    number: int,
    data: bytes,
    encoding: ImageEncoding = ImageEncoding.PNG,
    truth: tuple[str, ...] | None = None,
) -> Frame:
    return Frame(
        camera_id="cam",
        line_id="L1",
        station_id="s",
        frame_number=number,
        captured_at=T0 + timedelta(seconds=number),
        width=4,
        height=3,
        channels=1,
        encoding=encoding,
        image=data,
        ground_truth=None if truth is None else GroundTruth(labels=truth),
    )


PNG = cv2.imencode(".png", np.arange(12, dtype=np.uint8).reshape(3, 4))[1].tobytes()


def test_labels_implied_by_results() -> None:
    box = Box(label="crack", x_min=0, y_min=0, x_max=0.5, y_max=0.5)
    found = (Detection(label="spot", score=0.6, box=box), Detection(label="crack", score=0.9, box=box))
    assert label_from_result(result(0, Verdict.OK)) == "good"
    assert label_from_result(result(0, Verdict.DEFECT, detections=found)) == "crack"  # the best detection
    assert label_from_result(result(0, Verdict.DEFECT, {"good": 0.2, "dent": 0.5, "scratch": 0.3})) == "dent"
    assert label_from_result(result(0, Verdict.DEFECT)) == "defect"  # an anomaly model: no classes
    assert label_from_result(result(0, Verdict.UNCERTAIN)) is None
    assert label_from_result(result(0, Verdict.UNCERTAIN), include_uncertain=True) == "uncertain"


def test_latest_accepted_result_wins() -> None:
    older = result(1, Verdict.OK, version="1", inferred_minutes=1)
    newer = result(1, Verdict.DEFECT, version="2", inferred_minutes=5)
    other_line = result(2, Verdict.OK, line="L2")
    assert index_results([newer, older, other_line], ExportFilter(line="L1")) == {("cam", 1): newer}
    assert index_results([newer, older], ExportFilter(model_version="1")) == {("cam", 1): older}
    since = ExportFilter(since=T0 + timedelta(seconds=2))
    assert since.mongo_query() == {"captured_at": {"$gte": T0 + timedelta(seconds=2)}}
    assert index_results([older, other_line], since) == {("cam", 2): other_line}


def test_export_frames_labels_writes_and_relabels(tmp_path: Path) -> None:
    bmp = cv2.imencode(".bmp", np.full((3, 4), 7, np.uint8))[1].tobytes()
    frames = [
        frame(0, PNG),
        frame(1, PNG, truth=("scratch",)),  # ground truth beats the model's OK
        frame(2, bmp, ImageEncoding.UNKNOWN),  # re-encoded as PNG
        frame(3, PNG),  # uncertain: skipped
        frame(4, PNG),  # no result, no correction
        frame(0, PNG),  # the same frame again (a producer retry)
    ]
    results = {r.identity: r for r in (result(n, Verdict.OK) for n in (0, 1, 2))}
    results[("cam", 3)] = result(3, Verdict.UNCERTAIN)
    out = tmp_path / "train"

    summary = export_frames(frames, results, {}, out, ExportFilter())

    assert summary.written == Counter({"good": 2, "scratch": 1})
    assert summary.skipped == Counter({"verdict_uncertain": 1, "no_result": 1, "duplicate_frame": 1})
    assert (out / "good" / "cam_0000000000.png").read_bytes() == PNG
    converted = cv2.imread(str(out / "good" / "cam_0000000002.png"), cv2.IMREAD_UNCHANGED)
    assert converted is not None and converted.shape == (3, 4) and int(converted[0, 0]) == 7
    manifest = [json.loads(line) for line in (out / "export.jsonl").read_text().splitlines()]
    assert {m["path"]: m["label_source"] for m in manifest} == {
        "good/cam_0000000000.png": "model",
        "scratch/cam_0000000001.png": "ground_truth",
        "good/cam_0000000002.png": "model",
    }

    # A person relabels frame 0; the next export moves the file rather than keeping two copies.
    export_frames(frames[:1], results, {("cam", 0): Correction("dent")}, out, ExportFilter())
    assert not (out / "good" / "cam_0000000000.png").exists()
    assert (out / "dent" / "cam_0000000000.png").read_bytes() == PNG
    assert len((out / "export.jsonl").read_text().splitlines()) == 3


def test_voc_layout_round_trips_boxes_into_the_loader(tmp_path: Path) -> None:
    # 4x3 frames: a box covering x 0.25..0.75, y 0..2/3 is pixels 2..3 by 1..2 in VOC's 1-based corners.
    scratch = Box(label="scratch", x_min=0.25, y_min=0.0, x_max=0.75, y_max=2 / 3)
    weak = Box(label="spot", x_min=0.0, y_min=0.0, x_max=0.25, y_max=1 / 3)
    results = {
        ("cam", 0): result(
            0,
            Verdict.DEFECT,
            detections=(
                Detection(label="scratch", score=0.9, box=scratch),
                Detection(label="spot", score=0.2, box=weak),
            ),
        ),
        ("cam", 1): result(1, Verdict.OK),
        ("cam", 2): result(2, Verdict.DEFECT, detections=(Detection(label="spot", score=0.8, box=weak),)),
    }
    drawn = (BoxLabel("dent", 0.5, 0.0, 1.0, 1.0),)
    corrections = {("cam", 2): Correction("dent", drawn)}  # a person redrew frame 2
    out = tmp_path / "voc"

    export_frames(
        [frame(n, PNG) for n in range(3)], results, corrections, out, ExportFilter(), layout=ExportLayout.voc
    )

    dataset = load_dataset(out, "detect", "voc")
    by_key = {s.key: s for s in dataset.samples}
    first, good, redrawn = (by_key[f"cam_000000000{n}.png"] for n in range(3))
    assert [(b.label, b.x_min, b.y_min, b.x_max) for b in first.boxes] == [("scratch", 0.25, 0.0, 0.75)]
    assert first.boxes[0].y_max == pytest.approx(2 / 3)  # the 0.2 spot is below --min-box-score
    assert good.label == "good" and good.boxes == ()
    assert [(b.label, b.x_min, b.x_max) for b in redrawn.boxes] == [("dent", 0.5, 1.0)]
    assert dataset.classes == ("dent", "scratch")
