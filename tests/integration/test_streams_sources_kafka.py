"""Every source type through real Kafka: N frames published, consumed and decoded back byte-exact."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from schemas.records import ImageEncoding
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_SCHEMA, HEADER_TRACE_ID, TopicNames
from streams.encoder import EncoderOptions, encode_image
from streams.sources.base import ImageFormat
from tests.integration.test_streams_support import consume_frames, run_camera
from vision.synthetic import SyntheticDefectGenerator

pytestmark = pytest.mark.integration


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def _write_video(path: Path, frames: int) -> list[np.ndarray]:
    """A small MJPEG clip; returns the frames as OpenCV decodes them back (what a reader sees)."""
    rng = np.random.default_rng(3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (48, 32))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        decoded.append(image)
    capture.release()
    assert len(decoded) == frames
    return decoded


def test_synthetic_frames_round_trip_with_ground_truth(
    kafka_config: dict[str, Any], topics: TopicNames, tmp_path: Path
) -> None:
    summary = run_camera(
        kafka_config, topics.frames, "synthetic:?size=64x48&seed=11&defect_rate=0.5", 6, tmp_path, quality=80
    )
    assert summary.exit_code == 0 and summary.close.delivered == 6
    received = consume_frames(kafka_config, topics.frames, 6)
    assert [r.frame.frame_number for r in received] == list(range(6))
    generator = SyntheticDefectGenerator(width=64, height=48, defect_rate=0.5, seed=11)
    for index, item in enumerate(received):
        sample = generator.generate(index)
        assert sample.image is not None
        assert item.frame.image == encode_image(sample.image, EncoderOptions(jpeg_quality=80)).data
        assert item.key == b"cam-it"
        assert item.headers[HEADER_CONTENT_TYPE] == b"image/jpeg"
        assert item.headers[HEADER_SCHEMA] == b"dev.lineguard.v1.Frame"
        assert len(item.headers[HEADER_TRACE_ID]) == 32
        truth = item.frame.ground_truth
        assert truth is not None
        assert list(truth.labels) == ([] if sample.label == "good" else [sample.label])
        assert len(truth.boxes) == len(sample.boxes)
        if sample.label != "good":
            assert truth.mask_png is not None
            assert np.array_equal(_decode(truth.mask_png) > 0, sample.mask > 0)


def test_folder_files_travel_byte_for_byte_and_bad_files_are_skipped(
    kafka_config: dict[str, Any], topics: TopicNames, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(5)
    originals = []
    for index in range(4):
        ok, buffer = cv2.imencode(".jpg", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
        assert ok
        (folder / f"part-{index}.jpg").write_bytes(buffer.tobytes())
        originals.append(buffer.tobytes())
    (folder / "part-2b.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")  # sorts between 2 and 3
    summary = run_camera(kafka_config, topics.frames, f"folder:{folder}", 10, tmp_path)
    assert summary.source.skipped == 1
    assert summary.captured == 4 and summary.close.delivered == 4 and summary.exit_code == 0
    received = consume_frames(kafka_config, topics.frames, 4)
    assert [r.frame.image for r in received] == originals
    assert [r.frame.metadata["origin"] for r in received] == [f"part-{i}.jpg" for i in range(4)]
    assert all((r.frame.width, r.frame.height, r.frame.channels) == (40, 30, 3) for r in received)


def test_video_frames_arrive_pixel_exact_as_png(
    kafka_config: dict[str, Any], topics: TopicNames, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.avi"
    decoded = _write_video(clip, 5)
    summary = run_camera(kafka_config, topics.frames, f"video:{clip}", 5, tmp_path, encoding=ImageFormat.png)
    assert summary.close.delivered == 5 and summary.exit_code == 0
    received = consume_frames(kafka_config, topics.frames, 5)
    assert len(received) == 5
    for original, item in zip(decoded, received, strict=True):
        assert item.frame.encoding is ImageEncoding.PNG
        assert item.frame.image == encode_image(original, EncoderOptions(format=ImageFormat.png)).data
        assert np.array_equal(_decode(item.frame.image), original)


@pytest.fixture
def http_clip(tmp_path: Path) -> Iterator[tuple[str, list[np.ndarray]]]:
    """The clip served over HTTP: what OpenCV's FFmpeg backend reads like a network camera stream."""
    served = tmp_path / "served"
    served.mkdir()
    decoded = _write_video(served / "stream.avi", 4)
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.avi", decoded
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_opencv_stream_source_reconnects_at_the_end_of_the_stream(
    kafka_config: dict[str, Any], topics: TopicNames, tmp_path: Path, http_clip: tuple[str, list[np.ndarray]]
) -> None:
    url, decoded = http_clip
    # 6 frames from a 4-frame stream: the source loses the stream after 4 and reconnects (backoff 0.5 s).
    summary = run_camera(kafka_config, topics.frames, f"opencv:{url}", 6, tmp_path, encoding=ImageFormat.png)
    assert summary.source.reconnects == 1
    assert summary.close.delivered == 6 and summary.exit_code == 0
    received = consume_frames(kafka_config, topics.frames, 6)
    expected = decoded + decoded[:2]
    assert len(received) == 6
    for original, item in zip(expected, received, strict=True):
        assert np.array_equal(_decode(item.frame.image), original)


def test_with_a_schema_registry_frames_use_confluent_framing(
    kafka_config: dict[str, Any], topics: TopicNames, tmp_path: Path
) -> None:
    from schemas.serde import schema_registry_client

    registry = schema_registry_client(f"mock://{topics.frames}")
    summary = run_camera(
        kafka_config, topics.frames, "synthetic:?size=32x32", 3, tmp_path, schema_registry=registry
    )
    assert summary.close.delivered == 3
    received = consume_frames(kafka_config, topics.frames, 3, schema_registry=registry)
    assert [r.frame.frame_number for r in received] == [0, 1, 2]
    schema_id = registry.get_latest_version(f"{topics.frames}-value").schema_id  # type: ignore[union-attr]
    assert all(r.value[:1] == b"\x00" and int.from_bytes(r.value[1:5], "big") == schema_id for r in received)
