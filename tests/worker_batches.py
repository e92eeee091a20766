"""A batch of inferred frames for output-writer tests, unit and integration: no model, decoder or server."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from schemas.records import Frame, ImageEncoding, KafkaCoordinates
from schemas.vocabulary import Task
from vision.artifact import ModelMetadata
from vision.outputs import Prediction
from vision.preprocess import PreprocessSpec
from workers.decode import DecodedFrame
from workers.offsets import OffsetTracker
from workers.sinks.writer import InferredBatch
from workers.verdicts import ResultBuilder, ThresholdSource, VerdictThresholds


def inferred_batch(tracker: OffsetTracker, topic: str, count: int) -> InferredBatch:
    """``count`` decoded frames of ``topic`` partition 0 (offsets 0..count-1), each tracked by
    ``tracker``, all predicted good by a two-class classifier: the smallest batch the writer takes."""
    metadata = ModelMetadata(
        name="m",
        version="v1",
        task=Task.CLASSIFICATION,
        classes=("good", "scratch"),
        preprocess=PreprocessSpec.for_input(32, 32),
        thresholds={"defect": 0.5},
    )
    frames = []
    for offset in range(count):
        frame = Frame(
            camera_id="cam-1",
            line_id="line-1",
            station_id="s",
            frame_number=offset,
            captured_at=datetime.now(UTC),
            width=64,
            height=64,
            channels=3,
            encoding=ImageEncoding.JPEG,
            image=b"",
        )
        frames.append(
            DecodedFrame(
                ticket=tracker.track(topic, 0, offset),
                frame=frame,
                source=KafkaCoordinates(topic=topic, partition=0, offset=offset),
                image=np.zeros((64, 64, 3), np.uint8),
                tensor=np.zeros((32, 32, 3), np.float32),
                received_at=datetime.now(UTC),
                ready_at=0.0,
                decode_seconds=0.0,
            )
        )
    good = Prediction(
        class_scores={"good": 0.9, "scratch": 0.1},
        detections=(),
        anomaly_score=None,
        mask=None,
        defect_score=0.1,
    )
    builder = ResultBuilder(metadata, ThresholdSource(VerdictThresholds(0.5, 0.4)), worker_id="w1")
    return InferredBatch(frames, [good] * count, datetime.now(UTC), builder)
