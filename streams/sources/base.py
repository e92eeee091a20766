"""What every camera source yields, and the small protocol sources implement.

A source only captures: it knows nothing about Kafka, Avro or encoding settings. It hands over pixels (or
the bytes it already has, when a file on disk is a JPEG or PNG and can travel unchanged) with the capture
time and, for synthetic or evaluation data, the ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np

from vision.samples import BoxLabel


class ImageFormat(StrEnum):
    """Image encodings lineguard publishes (values are what users type on the command line)."""

    jpeg = "jpeg"
    png = "png"


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """Image bytes as they travel, with the geometry a reader needs without decoding them."""

    data: bytes
    format: ImageFormat
    width: int
    height: int
    channels: int


@dataclass(frozen=True, slots=True)
class FrameGroundTruth:
    """Known labels of a frame: classes present (empty for a good part), boxes and an optional mask.

    ``mask`` is HxW uint8 with 0 = good and k = the k-th entry of ``labels`` (counted from 1).
    """

    labels: tuple[str, ...]
    boxes: tuple[BoxLabel, ...] = ()
    mask: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One captured frame. ``image`` is HxW (grey) or HxWx3 BGR uint8; ``encoded``, when set, holds the same
    picture already encoded, so that a file can be published byte for byte without a decode/encode cycle."""

    captured_at: datetime
    image: np.ndarray
    encoded: EncodedImage | None = None
    ground_truth: FrameGroundTruth | None = None
    origin: str = ""  # where the pixels came from (file name, stream URL): goes into the record's metadata


@dataclass(slots=True)
class SourceStats:
    """Counters every source keeps; the runner shows them and the CLI reports them at exit."""

    frames: int = 0
    skipped: int = 0  # unreadable inputs (corrupt files), each logged once
    reconnects: int = 0  # camera or stream re-opened after a loss
    loops: int = 0  # completed passes over a looping file or folder


@runtime_checkable
class FrameSource(Protocol):
    """An iterator of captured frames that can be closed from another thread (a signal handler)."""

    name: str
    stats: SourceStats

    def __iter__(self) -> Iterator[CapturedFrame]: ...

    def close(self) -> None: ...


class VideoCapture(Protocol):
    """What the sources use of OpenCV's ``cv2.VideoCapture`` (tests hand in fakes)."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...
