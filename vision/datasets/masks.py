"""Segmentation data as image + mask folders: ``ROOT/images/<name>`` and ``ROOT/masks/<stem>.png`` (or
``<stem>_mask.png``).

With ``ROOT/classes.txt`` a mask pixel holds ``k`` for the k-th listed class (0 = background). Without it the
masks are binary (any non-zero pixel, e.g. 255, is a defect) and the one class is ``defect``. An image with no
mask file is a good image (all background). Masks are read once at load time to give each image its label
(``good`` or its most frequent defect class), which stratified splits need.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.datasets.folder import GOOD_CLASS
from vision.datasets.images import ImageReadError, image_loader, list_images, read_image, read_mask
from vision.datasets.labels import IssueLog, read_declared_classes
from vision.samples import LabeledDataset, Sample

IMAGE_FOLDER = "images"
MASK_FOLDER = "masks"
BINARY_CLASS = "defect"


def _mask_file(mask_folder: Path, image: Path) -> Path | None:
    for name in (f"{image.stem}.png", f"{image.stem}_mask.png", image.name):
        if (mask_folder / name).is_file():
            return mask_folder / name
    return None


def _mask_loader(path: Path | None, image: Path, binary: bool) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        if path is None:
            height, width = read_image(image).shape[:2]
            return np.zeros((height, width), dtype=np.uint8)
        mask = read_mask(path)
        return (mask > 0).astype(np.uint8) if binary else mask

    return load


def _label_of(mask: np.ndarray, declared: tuple[str, ...] | None, mask_path: Path, issues: IssueLog) -> str:
    """``good`` for an empty mask, else the class with the most pixels (ties: the one listed first)."""
    values, counts = np.unique(mask[mask > 0], return_counts=True)
    if declared is not None and values.size and int(values.max()) > len(declared):
        issues.add("unknown_class", mask_path, f"mask value {int(values.max())} > {len(declared)} classes")
    if values.size == 0:
        issues.add("empty_annotation", mask_path, "mask is all background (read as a good image)")
        return GOOD_CLASS
    if declared is None:
        return BINARY_CLASS
    known = [(int(c), int(v)) for v, c in zip(values, counts, strict=True) if int(v) <= len(declared)]
    return declared[max(known, key=lambda cv: (cv[0], -cv[1]))[1] - 1] if known else GOOD_CLASS


def load_mask_dataset(root: Path, issues: IssueLog | None = None, strict: bool = True) -> LabeledDataset:
    """Load image + mask folders for segmentation; ``strict=False`` (curation) records an unreadable mask
    as an issue and leaves its image out instead of failing."""
    issues = issues if issues is not None else IssueLog()
    image_folder, mask_folder = root / IMAGE_FOLDER, root / MASK_FOLDER
    for folder in (image_folder, mask_folder):
        if not folder.is_dir():
            raise ConfigurationError(
                f"segmentation data needs {folder} (layout: images/ and masks/ under {root})"
            )
    declared = read_declared_classes(root)
    classes = declared or (BINARY_CLASS,)
    images = list_images(image_folder)
    if not images:
        raise ConfigurationError(f"no images found in {image_folder}")
    samples: list[Sample] = []
    for image in images:
        mask_path = _mask_file(mask_folder, image)
        if mask_path is None:
            issues.add("missing_mask", image, "no mask file (read as a good image)")
            label = GOOD_CLASS
        else:
            try:
                label = _label_of(read_mask(mask_path), declared, mask_path, issues)
            except ImageReadError as exc:
                if strict:
                    raise
                issues.add("unreadable_annotation", mask_path, str(exc))
                continue
        samples.append(
            Sample(
                key=image.name,
                load_image=image_loader(image),
                label=label,
                load_mask=_mask_loader(mask_path, image, binary=declared is None),
                source_path=image,
            )
        )
    issues.log_summary(root)
    return LabeledDataset(
        task=Task.SEGMENTATION, classes=classes, samples=tuple(samples), description=f"masks {root}"
    )
