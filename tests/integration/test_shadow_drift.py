"""Drift watch on a recorded range of the real frames topic: a camera whose lamp dimmed and one out of focus
stand out against the training reference; an unchanged camera stays stable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.stack.endpoints import Endpoints
from schemas.records import Frame, ImageEncoding
from schemas.topics import TopicNames
from tests.integration.test_workers_support import produce_frames
from vision.synthetic import SyntheticDefectGenerator

pytestmark = pytest.mark.integration


def _jpeg(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buffer.tobytes()


def test_a_dimmed_and_a_blurred_camera_drift(
    kafka_config: dict[str, Any], endpoints: Endpoints, topics: TopicNames, tmp_path: Path
) -> None:
    generator = SyntheticDefectGenerator(width=128, height=128, defect_rate=0.3, seed=21)
    reference = tmp_path / "train"
    reference.mkdir()
    for index in range(300):  # the training images, JPEG like the camera's
        image = generator.generate(index).image
        assert image is not None
        (reference / f"{index:03d}.jpg").write_bytes(_jpeg(image))
    changes = {
        "cam-same": lambda img: img,
        "cam-dim": lambda img: (img * 0.6).astype(np.uint8),
        "cam-blur": lambda img: cv2.GaussianBlur(img, (7, 7), 2.5),
    }
    frames = []
    for index in range(450):
        camera = list(changes)[index % 3]
        image = generator.generate(1000 + index).image
        assert image is not None
        frames.append(
            Frame(
                camera_id=camera,
                line_id="line-1",
                station_id="s-1",
                frame_number=index,
                captured_at=datetime.now(UTC),
                width=128,
                height=128,
                channels=3,
                encoding=ImageEncoding.JPEG,
                image=_jpeg(changes[camera](image)),
            )
        )
    produce_frames(kafka_config, topics.frames, frames)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "MONGODB_URI": endpoints.mongodb_uri,
        "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
    }
    out = tmp_path / "drift"
    done = CliRunner().invoke(
        app, ["shadow", "drift", "--reference", str(reference), "--out", str(out)], env=env
    )
    assert done.exit_code == 0, done.output
    report = json.loads((out / "drift.json").read_text())
    cameras = report["cameras"]
    assert {name: entry["frames"] for name, entry in cameras.items()} == {
        "cam-blur": 150,
        "cam-dim": 150,
        "cam-same": 150,
    }
    assert cameras["cam-same"]["level"] == "stable"
    assert cameras["cam-dim"]["features"]["brightness"]["level"] == "shifted"
    assert cameras["cam-dim"]["features"]["brightness"]["ks_p"] < 1e-6
    assert cameras["cam-blur"]["features"]["sharpness"]["level"] == "shifted"
    assert cameras["cam-blur"]["features"]["brightness"]["level"] == "stable"
    prom = (out / "drift.prom").read_text()
    assert 'lineguard_drift_psi{camera="cam-dim",feature="brightness"}' in prom
