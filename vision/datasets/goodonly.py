"""Anomaly-detection data: images of good parts only for training, optionally defect folders for evaluation.

Accepted layouts (MVTec AD style):

- ``ROOT/*.png``: a flat folder, every image is good;
- ``ROOT/good/*.png`` plus optional ``ROOT/<defect type>/*.png``: the defect folders are what evaluation
  (AUROC, a calibrated threshold) needs; training uses only the good ones (:func:`good_samples`);
- optional ``ROOT/ground_truth/<defect type>/<stem>_mask.png``: defect masks (non-zero = defect).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.datasets.folder import GOOD_CLASS, class_folders, order_classes
from vision.datasets.images import image_loader, list_images, read_mask
from vision.samples import LabeledDataset, Sample

GROUND_TRUTH_FOLDER = "ground_truth"


def _binary_mask_loader(path: Path) -> Callable[[], np.ndarray]:
    return lambda: (read_mask(path) > 0).astype(np.uint8)


def _ground_truth_mask(root: Path, defect: str, image: Path) -> Path | None:
    folder = root / GROUND_TRUTH_FOLDER / defect
    for name in (f"{image.stem}_mask.png", f"{image.stem}.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_good_only_dataset(root: Path) -> LabeledDataset:
    """Load an anomaly dataset; ``classes`` is ``("good", <defect types>...)``."""
    flat_images = list_images(root)
    folders = [f for f in class_folders(root) if f.name != GROUND_TRUTH_FOLDER]
    if flat_images and not folders:
        folders_and_labels = [(root, GOOD_CLASS)]
    elif any(f.name == GOOD_CLASS for f in folders):
        folders_and_labels = [(f, f.name) for f in folders]
    else:
        raise ConfigurationError(
            f"{root} is not a good-only dataset: expected images directly in it or a '{GOOD_CLASS}' folder"
        )
    samples: list[Sample] = []
    for folder, label in folders_and_labels:
        for path in list_images(folder):
            mask_path = None if label == GOOD_CLASS else _ground_truth_mask(root, label, path)
            samples.append(
                Sample(
                    key=path.name if folder == root else f"{label}/{path.name}",
                    load_image=image_loader(path),
                    label=label,
                    load_mask=_binary_mask_loader(mask_path) if mask_path else None,
                    source_path=path,
                )
            )
    if not any(s.label == GOOD_CLASS for s in samples):
        raise ConfigurationError(
            f"no good images found in {root} (anomaly models are trained on good images)"
        )
    return LabeledDataset(
        task=Task.ANOMALY,
        classes=order_classes({label for _, label in folders_and_labels} | {GOOD_CLASS}),
        samples=tuple(samples),
        description=f"good-only {root}",
    )


def good_samples(dataset: LabeledDataset) -> LabeledDataset:
    """The training view of an anomaly dataset: only the good images."""
    return LabeledDataset(
        task=dataset.task,
        classes=dataset.classes,
        samples=tuple(s for s in dataset.samples if s.label == GOOD_CLASS),
        description=f"{dataset.description} (good only)",
    )
