"""``opencv:INDEX`` or ``opencv:URL``: a live camera or network stream through ``cv2.VideoCapture``.

Cameras drop off networks and USB buses; the source keeps trying with exponential backoff (counted in
``stats.reconnects``) instead of ending the producer. ``close()`` interrupts a backoff wait at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

from schemas.errors import ConfigurationError
from streams.sources.base import CapturedFrame, SourceStats, VideoCapture

logger = logging.getLogger(__name__)

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp"})


def parse_capture_target(target: str) -> int | str:
    """A device index (``"0"``) or a stream URL with a scheme OpenCV's FFmpeg backend understands."""
    if target.isdigit():
        return int(target)
    parts = urlsplit(target)
    if parts.scheme.lower() not in STREAM_SCHEMES or not parts.netloc:
        raise ConfigurationError(
            f"opencv source {target!r} is neither a device index nor a stream URL "
            f"({', '.join(sorted(STREAM_SCHEMES))}://host/...)"
        )
    return target


class Backoff:
    """Exponential backoff: initial, doubled per failure up to maximum, reset after a success."""

    def __init__(self, initial_s: float = 0.5, maximum_s: float = 30.0) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._next_s = initial_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.maximum_s)
        return delay

    def reset(self) -> None:
        self._next_s = self.initial_s


class OpenCVCaptureSource:
    """Frames from a camera device or stream, re-opened with backoff when reading fails."""

    def __init__(
        self,
        target: str,
        backoff: Backoff | None = None,
        capture_factory: Callable[[int | str], VideoCapture] | None = None,
    ) -> None:
        self.target = parse_capture_target(target)
        self.name = f"opencv:{_redact(target)}"
        self.stats = SourceStats()
        self.backoff = backoff or Backoff()
        self._capture_factory = capture_factory or _open_capture
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[CapturedFrame]:
        capture = None
        opened_once = False
        try:
            while not self._closed.is_set():
                if capture is None:
                    capture = self._capture_factory(self.target)
                    if not capture.isOpened():
                        capture.release()
                        capture = None
                        self._wait_before_retry("cannot open")
                        continue
                    if opened_once:
                        self.stats.reconnects += 1
                        logger.info("%s: reconnected (%d reconnects)", self.name, self.stats.reconnects)
                    opened_once = True
                ok, image = capture.read()
                if not ok or image is None:
                    capture.release()
                    capture = None
                    self._wait_before_retry("lost the stream")
                    continue
                self.backoff.reset()
                self.stats.frames += 1
                yield CapturedFrame(captured_at=datetime.now(UTC), image=image, origin=self.name)
        finally:
            if capture is not None:
                capture.release()

    def _wait_before_retry(self, why: str) -> None:
        delay = self.backoff.next_delay()
        logger.warning("%s: %s; retrying in %.1f s", self.name, why, delay)
        self._closed.wait(delay)

    def close(self) -> None:
        self._closed.set()


def _open_capture(target: int | str) -> VideoCapture:
    import cv2

    return cv2.VideoCapture(target)


def _redact(target: str) -> str:
    """A stream URL without its password, fit for logs and record metadata."""
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
