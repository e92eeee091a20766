"""Folder-per-class classification data: ``ROOT/<class>/<image>``.

The class list is the sorted folder names with ``good`` (the defect-free class) moved to the front, because
every lineguard classifier reads index 0 as "no defect".
"""

from __future__ import annotations

from pathlib import Path

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.datasets.images import image_loader, list_images
from vision.samples import LabeledDataset, Sample

GOOD_CLASS = "good"


def order_classes(names: set[str] | list[str]) -> tuple[str, ...]:
    """Sorted class names with ``good`` first when present."""
    ordered = sorted(set(names))
    if GOOD_CLASS in ordered:
        ordered.remove(GOOD_CLASS)
        ordered.insert(0, GOOD_CLASS)
    return tuple(ordered)


def class_folders(root: Path) -> list[Path]:
    """Sub-folders of ``root`` that are classes (hidden folders and a quarantine folder are skipped)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def load_folder_dataset(root: Path, task: Task = Task.CLASSIFICATION) -> LabeledDataset:
    """Load ``ROOT/<class>/*`` into a dataset whose samples are labelled with their folder name."""
    folders = class_folders(root)
    if not folders:
        raise ConfigurationError(
            f"{root} has no class folders: expected {root}/<class>/<image> (folder format)"
        )
    samples: list[Sample] = []
    labels: set[str] = set()
    for folder in folders:
        for path in list_images(folder):
            labels.add(folder.name)
            samples.append(
                Sample(
                    key=f"{folder.name}/{path.name}",
                    load_image=image_loader(path),
                    label=folder.name,
                    source_path=path,
                )
            )
    if not samples:
        raise ConfigurationError(f"no images found in the class folders of {root}")
    return LabeledDataset(
        task=task,
        classes=order_classes(labels),
        samples=tuple(samples),
        description=f"folder-per-class {root}",
    )
