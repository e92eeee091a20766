"""Camera sources behind one protocol (:class:`FrameSource`); :func:`open_source` reads ``--source``."""

from __future__ import annotations

from pathlib import Path

from schemas.errors import ConfigurationError
from streams.sources.base import (
    CapturedFrame,
    EncodedImage,
    FrameGroundTruth,
    FrameSource,
    ImageFormat,
    SourceStats,
)
from streams.sources.folder import FolderSource
from streams.sources.opencv import OpenCVCaptureSource
from streams.sources.spec import SOURCE_SPEC_HELP, SourceKind, SourceSpec, parse_size, parse_source_spec
from streams.sources.synthetic import SyntheticSource
from streams.sources.video import VideoFileSource
from vision.synthetic_kinds import DEFAULT_DEFECT_CLASSES, DEFECT_CLASSES, SURFACES

__all__ = [
    "SOURCE_SPEC_HELP",
    "CapturedFrame",
    "EncodedImage",
    "FrameGroundTruth",
    "FrameSource",
    "ImageFormat",
    "SourceKind",
    "SourceSpec",
    "SourceStats",
    "open_source",
    "parse_source_spec",
]



def open_source(spec: SourceSpec | str) -> FrameSource:
    """Build the source a ``--source`` value names; user mistakes (missing path, bad URL, bad option) raise
    :class:`ConfigurationError` here, before anything is published."""
    if isinstance(spec, str):
        spec = parse_source_spec(spec)
    if spec.kind is SourceKind.folder:
        return FolderSource(
            Path(spec.target).expanduser(), pattern=spec.options.get("pattern", "*"), loop=spec.flag("loop")
        )
    if spec.kind is SourceKind.video:
        return VideoFileSource(Path(spec.target).expanduser(), loop=spec.flag("loop"))
    if spec.kind is SourceKind.opencv:
        return OpenCVCaptureSource(spec.target)
    return _open_synthetic(spec)


def _open_synthetic(spec: SourceSpec) -> FrameSource:
    width, height = parse_size(spec.options.get("size", "640x480"), "synthetic size")
    if width < 16 or height < 16:
        raise ConfigurationError(f"synthetic size must be at least 16x16, got {width}x{height}")
    defect_rate = spec.number("defect_rate", 0.3)
    if not 0.0 <= defect_rate <= 1.0:
        raise ConfigurationError(f"synthetic defect_rate must be within [0, 1], got {defect_rate}")
    seed = spec.number("seed", 0)
    if seed != int(seed) or seed < 0:
        raise ConfigurationError(f"synthetic seed must be a non-negative integer, got {spec.options['seed']}")
    surface = spec.options.get("material", "metal")
    if surface not in SURFACES:
        raise ConfigurationError(f"synthetic material must be one of {', '.join(SURFACES)}, got {surface!r}")
    defects = tuple(name.strip() for name in spec.options.get("defects", "").split(",") if name.strip())
    unknown = [name for name in defects if name not in DEFECT_CLASSES]
    if unknown:
        raise ConfigurationError(
            f"synthetic defects {', '.join(unknown)} unknown; choose from {', '.join(DEFECT_CLASSES)}"
        )
    return SyntheticSource(
        width=width,
        height=height,
        defect_rate=defect_rate,
        seed=int(seed),
        surface=surface,
        classes=defects or DEFAULT_DEFECT_CLASSES,
    )
