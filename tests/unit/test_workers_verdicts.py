"""Verdicts: thresholds per line and camera, bands, per-task regions, results and defect events."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from schemas.errors import ConfigurationError
from schemas.records import Frame, ImageEncoding, KafkaCoordinates, Task, Verdict
from vision.artifact import ModelMetadata
from vision.outputs import Prediction, found_defect
from vision.preprocess import PreprocessSpec
from workers.decode import DecodedFrame
from workers.offsets import OffsetTracker
from workers.verdicts import (
    ResultBuilder,
    ThresholdPolicy,
    ThresholdSource,
    VerdictThresholds,
    crop_jpeg,
    model_thresholds,
)


def _metadata(task: Task, classes: tuple[str, ...], thresholds: dict[str, float]) -> ModelMetadata:
    return ModelMetadata(
        name="m",
        version="v7",
        task=task,
        classes=classes,
        preprocess=PreprocessSpec.for_input(32, 32),
        thresholds=thresholds,
    )


def _decoded(camera: str = "cam-1", line: str = "line-1") -> DecodedFrame:
    frame = Frame(
        camera_id=camera,
        line_id=line,
        station_id="s",
        frame_number=42,
        captured_at=datetime(2026, 1, 1, tzinfo=UTC),
        width=64,
        height=64,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=b"",
    )
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 255
    return DecodedFrame(
        ticket=OffsetTracker().track("frames", 0, 9),
        frame=frame,
        source=KafkaCoordinates(topic="frames", partition=0, offset=9),
        image=image,
        tensor=np.zeros((32, 32, 3), np.float32),
        received_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        ready_at=0.0,
        decode_seconds=0.0,
    )


def _classification(good: float) -> Prediction:
    return Prediction(
        class_scores={"good": good, "scratch": (1 - good) * 0.75, "spot": (1 - good) * 0.25},
        detections=(),
        anomaly_score=None,
        mask=None,
        defect_score=1 - good,
    )


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (0.0, Verdict.OK),
        (0.39, Verdict.OK),
        (0.4, Verdict.UNCERTAIN),
        (0.49, Verdict.UNCERTAIN),
        (0.5, Verdict.DEFECT),
    ],
)
def test_verdict_bands(score: float, verdict: Verdict) -> None:
    assert VerdictThresholds(defect=0.5, uncertain=0.4).verdict(score) is verdict


def test_camera_overrides_line_overrides_default() -> None:
    policy = ThresholdPolicy.from_mapping(
        {"lines": {"line-2": {"defect": 0.7}}, "cameras": {"cam-9": {"defect": 0.9, "uncertain": 0.2}}},
        VerdictThresholds(defect=0.5, uncertain=0.4),
    )
    assert policy.for_frame("line-1", "cam-1") == VerdictThresholds(0.5, 0.4)
    assert policy.for_frame("line-2", "cam-1").defect == 0.7
    assert policy.for_frame("line-2", "cam-1").uncertain == pytest.approx(0.56)
    assert policy.for_frame("line-2", "cam-9") == VerdictThresholds(0.9, 0.2)


def test_invalid_thresholds_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        VerdictThresholds(defect=0.3, uncertain=0.5)
    with pytest.raises(ConfigurationError):
        ThresholdPolicy.from_mapping({"cameras": {"c": {"defct": 0.3}}}, VerdictThresholds(0.5, 0.4))


def test_model_threshold_comes_from_the_artifact_per_task() -> None:
    assert model_thresholds(_metadata(Task.CLASSIFICATION, ("good", "x"), {"defect": 0.6})).defect == 0.6
    assert model_thresholds(_metadata(Task.DETECTION, ("x",), {"score": 0.3})).defect == 0.3
    assert model_thresholds(_metadata(Task.ANOMALY, ("good", "x"), {"anomaly": 2.5})).defect == 2.5


def test_threshold_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({"cameras": {"cam-1": {"defect": 0.8}}}))
    source = ThresholdSource(VerdictThresholds(0.5, 0.4), path)
    assert source.policy.for_frame("l", "cam-1").defect == 0.8
    path.write_text(json.dumps({"cameras": {"cam-1": {"defect": 0.3}}}))
    os.utime(path, (1, 1))  # a different mtime, whatever the file system's resolution
    assert source.refresh().for_frame("l", "cam-1").defect == 0.3
    path.write_text("{broken")
    os.utime(path, (2, 2))
    assert source.refresh().for_frame("l", "cam-1").defect == 0.3  # a broken edit keeps the last good policy


def test_classification_result_and_whole_image_event() -> None:
    builder = ResultBuilder(
        _metadata(Task.CLASSIFICATION, ("good", "scratch", "spot"), {"defect": 0.5}),
        ThresholdSource(VerdictThresholds(0.5, 0.4)),
        worker_id="w-1",
    )
    inferred_at = datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    ok, no_event = builder.build(_decoded(), _classification(good=0.9), inferred_at, batch_size=4)
    assert ok.verdict is Verdict.OK and no_event is None
    assert ok.model.task is Task.CLASSIFICATION and ok.batch_size == 4 and ok.worker_id == "w-1"
    assert {s.label for s in ok.class_scores} == {"good", "scratch", "spot"}

    defect, event = builder.build(_decoded(), _classification(good=0.2), inferred_at, batch_size=4)
    assert defect.verdict is Verdict.DEFECT
    assert event is not None
    assert event.event_id == "cam-1:42:v7"
    assert [r.label for r in event.regions] == ["scratch"]
    assert event.regions[0].crop_jpeg.startswith(b"\xff\xd8")
    assert event.source == defect.source


def test_detection_reports_boxes_above_the_uncertain_threshold() -> None:
    builder = ResultBuilder(
        _metadata(Task.DETECTION, ("scratch", "spot"), {"score": 0.5}),
        ThresholdSource(VerdictThresholds(0.5, 0.4)),
        worker_id="w",
    )
    prediction = Prediction(
        class_scores={"scratch": 0.8, "spot": 0.1},
        detections=(
            found_defect("scratch", 0.8, 0.25, 0.25, 0.75, 0.75),
            found_defect("spot", 0.1, 0.0, 0.0, 0.1, 0.1),
        ),
        anomaly_score=None,
        mask=None,
        defect_score=0.8,
    )
    result, event = builder.build(_decoded(), prediction, datetime.now(UTC), 1)
    assert [d.label for d in result.detections] == ["scratch"]
    assert event is not None and [r.box.x_min for r in event.regions] == [0.25]


def test_anomaly_mask_becomes_regions_and_png() -> None:
    builder = ResultBuilder(
        _metadata(Task.ANOMALY, ("good", "defect"), {"anomaly": 0.5}),
        ThresholdSource(VerdictThresholds(0.5, 0.4)),
        worker_id="w",
        uncertain_events=False,
    )
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 20:28] = 1
    prediction = Prediction(class_scores={}, detections=(), anomaly_score=0.9, mask=mask, defect_score=0.9)
    result, event = builder.build(_decoded(), prediction, datetime.now(UTC), 1)
    assert result.verdict is Verdict.DEFECT and result.anomaly_score == pytest.approx(0.9)
    assert result.anomaly_mask_png is not None and result.anomaly_mask_png.startswith(b"\x89PNG")
    (box,) = [d.box for d in result.detections]
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == (20 / 32, 8 / 32, 28 / 32, 16 / 32)
    assert event is not None and event.anomaly_score == pytest.approx(0.9)

    uncertain = Prediction(class_scores={}, detections=(), anomaly_score=0.45, mask=None, defect_score=0.45)
    result, event = builder.build(_decoded(), uncertain, datetime.now(UTC), 1)
    assert result.verdict is Verdict.UNCERTAIN and event is None  # uncertain events switched off


def test_crop_is_small_and_empty_regions_give_no_bytes() -> None:
    import cv2

    from schemas.records import Box

    image = np.random.default_rng(0).integers(0, 255, (400, 600, 3), dtype=np.uint8)
    crop = crop_jpeg(image, Box(label="x", x_min=0.0, y_min=0.0, x_max=1.0, y_max=1.0), max_side=96)
    decoded = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) == 96
    assert crop_jpeg(image, Box(label="x", x_min=0.5, y_min=0.5, x_max=0.5, y_max=0.5), max_side=96) == b""


def test_segmentation_regions_become_detections_and_the_mask_travels_as_png() -> None:
    import cv2

    builder = ResultBuilder(
        _metadata(Task.SEGMENTATION, ("scratch", "spot"), {"defect": 0.5}),
        ThresholdSource(VerdictThresholds(0.5, 0.4)),
        worker_id="w",
    )
    mask = np.zeros((32, 32), np.uint8)
    mask[4:8, 4:12] = 2  # a "spot" region
    prediction = Prediction(
        class_scores={"scratch": 0.1, "spot": 0.95},
        detections=(found_defect("spot", 0.95, 4 / 32, 4 / 32, 12 / 32, 8 / 32),),
        anomaly_score=None,
        mask=mask,
        defect_score=0.95,
    )
    result, event = builder.build(_decoded(), prediction, datetime.now(UTC), 2)
    assert result.verdict is Verdict.DEFECT and result.model.task is Task.SEGMENTATION
    assert [(d.label, d.box.x_max) for d in result.detections] == [("spot", 12 / 32)]
    assert result.anomaly_mask_png is not None
    decoded = cv2.imdecode(np.frombuffer(result.anomaly_mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, mask)
    assert event is not None and [r.label for r in event.regions] == ["spot"]
