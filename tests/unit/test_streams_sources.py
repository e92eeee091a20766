"""Camera sources and the --source parser (pure: local files and fakes, no services)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.errors import ConfigurationError
from streams.sources import ImageFormat, SourceKind, open_source, parse_source_spec
from streams.sources.folder import FolderSource
from streams.sources.opencv import Backoff, OpenCVCaptureSource, parse_capture_target
from streams.sources.spec import parse_size
from streams.sources.synthetic import SyntheticSource
from streams.sources.video import VideoFileSource


def _write_png(path: Path, value: int, size: tuple[int, int] = (24, 16)) -> bytes:
    image = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(buffer.tobytes())
    return buffer.tobytes()


# -- spec parsing ------------------------------------------------------------------------------------------


def test_parses_folder_spec_with_options() -> None:
    spec = parse_source_spec("folder:/data/parts?loop=1&pattern=*.png")
    assert spec.kind is SourceKind.folder
    assert spec.target == "/data/parts"
    assert spec.options == {"loop": "1", "pattern": "*.png"}
    assert spec.flag("loop") is True


def test_opencv_spec_keeps_the_url_query_intact() -> None:
    spec = parse_source_spec("opencv:rtsp://cam.local/stream?channel=2&subtype=0")
    assert spec.kind is SourceKind.opencv
    assert spec.target == "rtsp://cam.local/stream?channel=2&subtype=0"


def test_bare_synthetic_spec_has_no_options() -> None:
    spec = parse_source_spec("synthetic")
    assert spec.kind is SourceKind.synthetic and spec.options == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty --source"),
        ("webcam:0", "unknown source kind"),
        ("folder:", "needs a path"),
        ("video:/x.mp4?speed=2", "unknown option(s) speed"),
        ("synthetic:/tmp", "takes options only"),
        ("opencv:", "device index or a stream URL"),
    ],
)
def test_malformed_specs_are_configuration_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_source_spec(text)


def test_non_boolean_flag_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a boolean"):
        parse_source_spec("folder:/x?loop=maybe").flag("loop")


def test_parse_size() -> None:
    assert parse_size("640x480") == (640, 480)
    for bad in ("640", "0x10", "axb", "-1x5"):
        with pytest.raises(ConfigurationError):
            parse_size(bad)


def test_opencv_targets() -> None:
    assert parse_capture_target("0") == 0
    assert parse_capture_target("rtsp://user:pw@cam/stream") == "rtsp://user:pw@cam/stream"
    for bad in ("/dev/video0", "ftp://cam/x", "rtsp:///nohost", "camera"):
        with pytest.raises(ConfigurationError):
            parse_capture_target(bad)


def test_missing_paths_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a directory"):
        open_source(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ConfigurationError, match="no image files"):
        open_source(f"folder:{tmp_path}")
    with pytest.raises(ConfigurationError, match="does not exist"):
        open_source(f"video:{tmp_path / 'missing.mp4'}")
    (tmp_path / "not-a-video.mp4").write_bytes(b"nonsense")
    with pytest.raises(ConfigurationError, match="cannot open"):
        open_source(f"video:{tmp_path / 'not-a-video.mp4'}")


@pytest.mark.parametrize(
    "spec",
    ["synthetic:?size=8x8", "synthetic:?defect_rate=2", "synthetic:?seed=-1", "synthetic:?material=wood"],
)
def test_bad_synthetic_options(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        open_source(spec)


# -- folder ------------------------------------------------------------------------------------------------


def test_folder_yields_files_in_name_order_and_passes_png_bytes_through(tmp_path: Path) -> None:
    written = {name: _write_png(tmp_path / name, value) for name, value in (("b.png", 20), ("a.png", 10))}
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(FolderSource(tmp_path))
    assert [f.origin for f in frames] == ["a.png", "b.png"]
    assert frames[0].encoded is not None
    assert frames[0].encoded.data == written["a.png"]
    assert frames[0].encoded.format is ImageFormat.png
    assert (frames[0].encoded.width, frames[0].encoded.height, frames[0].encoded.channels) == (24, 16, 3)
    assert int(frames[1].image[0, 0, 0]) == 20


def test_folder_skips_unreadable_files_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_png(tmp_path / "1.png", 1)
    (tmp_path / "2.jpg").write_bytes(b"\xff\xd8\xff garbage, not a JPEG")
    _write_png(tmp_path / "3.png", 3)
    source = FolderSource(tmp_path)
    frames = list(source)
    assert [f.origin for f in frames] == ["1.png", "3.png"]
    assert source.stats.skipped == 1
    assert source.stats.frames == 2
    assert "2.jpg" in caplog.text


def test_folder_loops_until_closed(tmp_path: Path) -> None:
    _write_png(tmp_path / "a.png", 1)
    _write_png(tmp_path / "b.png", 2)
    source = open_source(f"folder:{tmp_path}?loop=1")
    origins = []
    for frame in source:
        origins.append(frame.origin)
        if len(origins) == 5:
            source.close()
    assert origins == ["a.png", "b.png", "a.png", "b.png", "a.png"]
    assert source.stats.loops == 2


def test_folder_grey_png_keeps_one_channel(tmp_path: Path) -> None:
    ok, buffer = cv2.imencode(".png", np.full((8, 10), 7, dtype=np.uint8))
    assert ok
    (tmp_path / "grey.png").write_bytes(buffer.tobytes())
    (frame,) = list(FolderSource(tmp_path))
    assert frame.image.shape == (8, 10)
    assert frame.encoded is not None and frame.encoded.channels == 1


# -- video -------------------------------------------------------------------------------------------------


def _write_video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (32, 24))
    assert writer.isOpened()
    for index in range(frames):
        writer.write(np.full((24, 32, 3), index * 20, dtype=np.uint8))
    writer.release()


def test_video_file_yields_every_frame_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    _write_video(path, 4)
    assert len(list(VideoFileSource(path))) == 4
    looping = VideoFileSource(path, loop=True)
    seen = 0
    for _ in looping:
        seen += 1
        if seen == 10:
            looping.close()
    assert seen == 10 and looping.stats.loops == 2


# -- synthetic ---------------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_carries_ground_truth_numbered_by_labels() -> None:
    first = list(zip(SyntheticSource(width=48, height=32, defect_rate=1.0, seed=5), range(3), strict=False))
    again = list(zip(SyntheticSource(width=48, height=32, defect_rate=1.0, seed=5), range(3), strict=False))
    for (a, _), (b, _) in zip(first, again, strict=True):
        assert np.array_equal(a.image, b.image)
        assert a.ground_truth is not None and a.ground_truth.labels
        assert a.ground_truth.mask is not None
        # The Frame contract numbers mask classes by the frame's own labels: one label -> values {0, 1}.
        assert set(np.unique(a.ground_truth.mask)) <= {0, 1}
        assert all(box.label == a.ground_truth.labels[0] for box in a.ground_truth.boxes)


def test_synthetic_good_frames_have_empty_ground_truth() -> None:
    frame = next(iter(SyntheticSource(width=32, height=32, defect_rate=0.0)))
    assert frame.ground_truth is not None
    assert frame.ground_truth.labels == () and frame.ground_truth.mask is None


# -- opencv (with a fake capture: no camera here) ----------------------------------------------------------


class _FakeCapture:
    def __init__(self, frames: int, opens: bool = True) -> None:
        self.frames = frames
        self.opens = opens
        self.released = False

    def isOpened(self) -> bool:
        return self.opens

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.frames == 0:
            return False, None
        self.frames -= 1
        return True, np.zeros((4, 4, 3), dtype=np.uint8)

    def release(self) -> None:
        self.released = True


def test_opencv_source_reconnects_with_backoff_after_losing_the_stream() -> None:
    # First open: 2 frames then loss; then one failed open; then 3 frames.
    captures = iter([_FakeCapture(2), _FakeCapture(0, opens=False), _FakeCapture(3)])
    source = OpenCVCaptureSource(
        "rtsp://cam/stream",
        backoff=Backoff(initial_s=0.001, maximum_s=0.002),
        capture_factory=lambda _: next(captures),
    )
    received = 0
    for _ in source:
        received += 1
        if received == 5:
            source.close()
    assert received == 5
    assert source.stats.reconnects == 1


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, maximum_s=3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_opencv_source_name_hides_the_password() -> None:
    source = OpenCVCaptureSource(
        "rtsp://admin:secret@cam:554/stream", capture_factory=lambda _: _FakeCapture(0)
    )
    assert "secret" not in source.name
    assert "admin:***@cam:554" in source.name
