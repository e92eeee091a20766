"""Labelled image data on disk -> :class:`vision.samples.LabeledDataset`.

One entry point, :func:`load_dataset`, reads every format lineguard trains and evaluates on; the rest of the
code base sees only ``Sample`` s (images loaded lazily as uint8 grey or BGR, boxes normalized to [0, 1],
masks of class indices).

Formats and the tasks they serve:

=========  ==========================================  ====================================
format     layout                                      tasks
=========  ==========================================  ====================================
folder     ``ROOT/<class>/<image>``                    classify
voc        ``ROOT/Annotations/*.xml`` + ``JPEGImages`` detect, classify
coco       ``ROOT/*.json`` (or the file) + images      detect, segment, classify
masks      ``ROOT/images/`` + ``ROOT/masks/``          segment, classify
goodonly   ``ROOT/good/`` (+ defect folders) or flat   anomaly
=========  ==========================================  ====================================
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, StrEnum
from pathlib import Path

from schemas.errors import ConfigurationError
from schemas.vocabulary import MODEL_TASKS, Task
from vision.samples import LabeledDataset


class DatasetFormat(StrEnum):
    """How a dataset is laid out on disk."""

    folder = "folder"
    voc = "voc"
    coco = "coco"
    masks = "masks"
    goodonly = "goodonly"


SUPPORTED_TASKS: dict[DatasetFormat, frozenset[Task]] = {
    DatasetFormat.folder: frozenset({Task.CLASSIFICATION}),
    DatasetFormat.voc: frozenset({Task.DETECTION, Task.CLASSIFICATION}),
    DatasetFormat.coco: frozenset({Task.DETECTION, Task.SEGMENTATION, Task.CLASSIFICATION}),
    DatasetFormat.masks: frozenset({Task.SEGMENTATION, Task.CLASSIFICATION}),
    DatasetFormat.goodonly: frozenset({Task.ANOMALY}),
}


def _parse_enum(value: object, kind: type[Enum], what: str, allowed: Iterable[Enum] | None = None) -> Enum:
    members = tuple(kind if allowed is None else allowed)
    try:
        found = value if isinstance(value, kind) else kind(str(value).lower())
    except ValueError:
        found = None
    if found not in members:
        choices = ", ".join(member.value for member in members)
        raise ConfigurationError(f"unknown {what} {value!r}: choose one of {choices}") from None
    return found


def guess_format(path: Path, task: Task) -> DatasetFormat:
    """The format a dataset at ``path`` most likely has, for a caller that did not say."""
    if task is Task.ANOMALY:
        return DatasetFormat.goodonly
    if path.is_file() and path.suffix.lower() == ".json":
        return DatasetFormat.coco
    if task is Task.SEGMENTATION:
        return DatasetFormat.masks if (path / "masks").is_dir() else DatasetFormat.coco
    if task is Task.DETECTION:
        has_voc = (path / "Annotations").is_dir() or any(path.glob("*.xml"))
        return DatasetFormat.voc if has_voc else DatasetFormat.coco
    return DatasetFormat.folder


def load_dataset(
    path: Path | str, task: Task | str, fmt: DatasetFormat | str | None = None
) -> LabeledDataset:
    """Read the dataset at ``path`` for ``task``; ``fmt=None`` guesses the format from the layout.

    Raises :class:`ConfigurationError` (one line naming the path) for a missing folder, an unknown format,
    a format that cannot serve the task, no images, or an annotation file that cannot be read.
    """
    path = Path(path).expanduser()
    task = Task(_parse_enum(task, Task, "task", MODEL_TASKS).value)
    if not path.exists():
        raise ConfigurationError(f"dataset path {path} does not exist")
    dataset_format = (
        guess_format(path, task)
        if fmt is None or str(getattr(fmt, "value", fmt)) == "auto"
        else DatasetFormat(_parse_enum(fmt, DatasetFormat, "dataset format").value)
    )
    if task not in SUPPORTED_TASKS[dataset_format]:
        tasks = ", ".join(sorted(t.value for t in SUPPORTED_TASKS[dataset_format]))
        raise ConfigurationError(
            f"format {dataset_format.value!r} cannot serve task {task.value!r} (it serves {tasks})"
        )
    if not path.is_dir() and dataset_format is not DatasetFormat.coco:
        raise ConfigurationError(f"dataset path {path} is not a folder")

    dataset = _load(path, task, dataset_format)
    return _as_classification(dataset) if task is Task.CLASSIFICATION else dataset


def _load(path: Path, task: Task, dataset_format: DatasetFormat) -> LabeledDataset:
    # Loaders import OpenCV; importing them here keeps it out of `import vision.datasets` (the CLI's sake).
    if dataset_format is DatasetFormat.folder:
        from vision.datasets.folder import load_folder_dataset

        return load_folder_dataset(path, task)
    if dataset_format is DatasetFormat.voc:
        from vision.datasets.voc import load_voc_dataset

        return load_voc_dataset(path, task)
    if dataset_format is DatasetFormat.coco:
        from vision.datasets.coco import load_coco_dataset

        return load_coco_dataset(path, task)
    if dataset_format is DatasetFormat.masks:
        from vision.datasets.masks import load_mask_dataset

        return load_mask_dataset(path)
    from vision.datasets.goodonly import load_good_only_dataset

    return load_good_only_dataset(path)


def _as_classification(dataset: LabeledDataset) -> LabeledDataset:
    """Box and mask data read for classification: image-level labels, ``good`` first in the class list."""
    from vision.datasets.folder import GOOD_CLASS, order_classes

    classes = order_classes({*dataset.classes, GOOD_CLASS})
    return LabeledDataset(Task.CLASSIFICATION, classes, dataset.samples, dataset.description)


__all__ = ["SUPPORTED_TASKS", "DatasetFormat", "guess_format", "load_dataset"]
