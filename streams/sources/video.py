"""``video:PATH``: the frames of a video file, optionally looping."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from schemas.errors import ConfigurationError
from streams.sources.base import CapturedFrame, SourceStats, VideoCapture


class VideoFileSource:
    """Decodes a video file with OpenCV; with ``loop`` it starts over at the end (re-opening the file, which
    works for every container, unlike seeking)."""

    def __init__(self, path: Path, loop: bool = False) -> None:
        if not path.is_file():
            raise ConfigurationError(f"video source: {path} does not exist or is not a file")
        self.path = path
        self.loop = loop
        self.name = f"video:{path}"
        self.stats = SourceStats()
        self._closed = threading.Event()
        capture = self._open()
        capture.release()

    def _open(self) -> VideoCapture:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise ConfigurationError(f"video source: OpenCV cannot open {self.path} (unsupported codec?)")
        return capture

    def __iter__(self) -> Iterator[CapturedFrame]:
        while not self._closed.is_set():
            capture = self._open()
            frames_this_pass = 0
            try:
                while not self._closed.is_set():
                    ok, image = capture.read()
                    if not ok or image is None:
                        break
                    frames_this_pass += 1
                    self.stats.frames += 1
                    yield CapturedFrame(
                        captured_at=datetime.now(UTC),
                        image=image,
                        origin=f"{self.path.name}#{frames_this_pass - 1}",
                    )
            finally:
                capture.release()
            if self._closed.is_set():
                return
            self.stats.loops += 1
            if not self.loop or frames_this_pass == 0:
                return

    def close(self) -> None:
        self._closed.set()
