"""Label bookkeeping shared by the box and mask loaders: declared class lists, box clipping, image-level
labels, and the label problems that curation reports instead of silently fixing."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigurationError
from vision.datasets.folder import GOOD_CLASS
from vision.samples import BoxLabel

logger = logging.getLogger(__name__)

CLASSES_FILE = "classes.txt"


@dataclass(frozen=True, slots=True)
class LabelIssue:
    """A problem found while reading annotations. ``kind`` is one of: box_outside_image, degenerate_box,
    empty_annotation, unknown_class, missing_image, missing_mask, unreadable_annotation."""

    kind: str
    file: str
    detail: str


class IssueLog:
    """Collects :class:`LabelIssue` s while a loader runs; the loader fixes what it can (clips boxes, skips
    unknown classes) and curation reports the list. ``declared_sizes`` keeps the (width, height) each
    annotation file claims for its image, so curation can catch annotations made for another resolution
    (their boxes would be normalized wrongly)."""

    def __init__(self) -> None:
        self.issues: list[LabelIssue] = []
        self.declared_sizes: dict[str, tuple[int, int]] = {}

    def declare_size(self, image: Path, width: int, height: int) -> None:
        self.declared_sizes[str(image)] = (width, height)

    def add(self, kind: str, file: Path | str, detail: str) -> None:
        self.issues.append(LabelIssue(kind=kind, file=str(file), detail=detail))

    def log_summary(self, source: Path) -> None:
        if self.issues:
            counts = Counter(issue.kind for issue in self.issues)
            summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            logger.warning("label problems in %s: %s (run `lineguard dataset check`)", source, summary)


def read_declared_classes(root: Path) -> tuple[str, ...] | None:
    """The class names in ``ROOT/classes.txt`` (one per line, blank lines and ``#`` comments skipped)."""
    path = root / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read class list {path}: {exc}") from exc
    names = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise ConfigurationError(f"class list {path} is empty")
    if len(set(names)) != len(names):
        raise ConfigurationError(f"class list {path} names a class twice")
    return names


def normalized_box(
    label: str,
    pixels: tuple[float, float, float, float],
    width: int,
    height: int,
    source: Path | str,
    issues: IssueLog,
) -> BoxLabel | None:
    """Normalize a pixel box (x_min, y_min, x_max, y_max) to [0, 1]; clip a box that leaves the image and
    drop one with no area left, recording both as issues."""
    x_min, y_min, x_max, y_max = pixels
    if x_min < 0 or y_min < 0 or x_max > width or y_max > height:
        issues.add("box_outside_image", source, f"{label} box {pixels} outside {width}x{height} image")
    x_min, x_max = max(0.0, x_min), min(float(width), x_max)
    y_min, y_max = max(0.0, y_min), min(float(height), y_max)
    if x_max <= x_min or y_max <= y_min:
        issues.add("degenerate_box", source, f"{label} box {pixels} has no area inside the image")
        return None
    return BoxLabel(label, x_min / width, y_min / height, x_max / width, y_max / height)


def image_label(labels: Iterable[str], class_order: tuple[str, ...]) -> str:
    """The image-level label of an image with these object labels: ``good`` for none, else the most
    frequent one (ties go to the class listed first), so stratified splits can balance defect types."""
    counts = Counter(labels)
    if not counts:
        return GOOD_CLASS
    rank = {name: i for i, name in enumerate(class_order)}
    return min(counts, key=lambda name: (-counts[name], rank.get(name, len(rank)), name))
