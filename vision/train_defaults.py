"""The recipe ``lineguard train`` picks from the data when the user leaves it open.

``lineguard train --task T --data DIR --out M`` with nothing else should get the recipe that works for the
data, not a fixed 160x160 colour input: a 640x640 grey PCB scan shrunk to 160 loses its thin defects, and a
1130x460 spindle photograph stretched square distorts its pits. So, from a sample of the images:

- **input size**: the images' median size, shrunk (never enlarged: a small image stays at its own size) so
  that the longest side fits the task's cap, aspect ratio kept, sides rounded to the network's multiple;
- **channels**: 1 when every sampled image is grey (or colour with three equal channels), else 3;
- **detector head**: FCOS (multi-scale, strides 8/16/32), measured better than CenterNet on every real set;
- **crops**: detection and segmentation inputs larger than 320 px train on 320 px crops (full detail at the
  cost of a crop), served whole;
- **schedule** (:func:`choose_schedule`): epochs, batch size, patience and time budget. Segmentation of real
  images gets its own (batch 8, up to 100 epochs within 25 minutes, patience 20): a few hundred images with
  pits of a few dozen pixels give a few batches per epoch, and the defect IoU only rises after some
  hundreds of steps (README, issue 11). Other tasks and generated data keep the general defaults.

Anything the user gives wins; :attr:`Recipe.notes` says what was chosen and why, for the CLI to print.
Classification keeps its fixed 160x160 (its measured figures are at that size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from schemas.vocabulary import Task
from vision.samples import LabeledDataset

# Longest side of the input per task: detail where the task needs it, within a 30-minute 2-core budget.
MAX_SIDE = {Task.DETECTION: 640, Task.SEGMENTATION: 640, Task.ANOMALY: 320}
CLASSIFIER_INPUT = (160, 160)
CROP_SIDE = 320  # detection and segmentation train on crops of at most this side
CROP_TASKS = (Task.DETECTION, Task.SEGMENTATION)
SAMPLED_IMAGES = 16
DEFAULT_HEAD = "fcos"


@dataclass(frozen=True)
class Recipe:
    """What the run will use, and one note per choice (given or chosen, and why)."""

    input_size: tuple[int, int]
    channels: int
    detector_head: str
    crop: tuple[int, int] | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Schedule:
    """How long and in which steps the run trains, and one note per choice."""

    epochs: int
    batch_size: int
    patience: int
    max_minutes: float | None
    notes: list[str] = field(default_factory=list)


GENERAL_SCHEDULE = Schedule(epochs=20, batch_size=32, patience=5, max_minutes=None)
# Measured on ball-screw pitting masks at 640x256 on 320x256 crops, 2 shared CPU cores (README, issue 11).
SEGMENTATION_SCHEDULE = Schedule(epochs=100, batch_size=8, patience=20, max_minutes=25.0)


def sample_shapes(dataset: LabeledDataset, count: int = SAMPLED_IMAGES) -> list[tuple[int, ...]]:
    """Shapes (HxW or HxWxC) of up to ``count`` images spread evenly over the dataset, with whether each is
    grey: a colour image whose three channels are equal counts as grey (shape HxW)."""
    if not dataset.samples:
        return []
    picks = np.linspace(0, len(dataset.samples) - 1, num=min(count, len(dataset.samples))).round().astype(int)
    shapes: list[tuple[int, ...]] = []
    for index in sorted(set(picks.tolist())):
        image = dataset.samples[index].load_image()
        grey = image.ndim == 2 or bool(np.all(image == image[..., :1]))
        shapes.append(tuple(image.shape[:2]) if grey else tuple(image.shape))
    return shapes


def _multiple(task: Task, head: str) -> int:
    return 32 if task is Task.DETECTION and head == "fcos" else 16


def fitted_size(width: int, height: int, max_side: int, multiple: int) -> tuple[int, int]:
    """(width, height) shrunk to fit ``max_side`` (never enlarged), aspect kept, each side rounded to the
    nearest ``multiple`` (at least one multiple)."""
    scale = min(1.0, max_side / max(width, height))
    return tuple(  # type: ignore[return-value]
        max(multiple, round(side * scale / multiple) * multiple) for side in (width, height)
    )


def choose_recipe(
    task: Task,
    shapes: Sequence[tuple[int, ...]],
    *,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    detector_head: str | None = None,
    crop: tuple[int, int] | None = None,
) -> Recipe:
    """The recipe for ``task`` on images of ``shapes`` (see :func:`sample_shapes`); given values win."""
    notes: list[str] = []
    head = detector_head or DEFAULT_HEAD
    if task is Task.DETECTION:
        notes.append(f"head {head}" + (" (given)" if detector_head else " (multi-scale, strides 8/16/32)"))
    if input_size is not None:
        size = input_size
        notes.append(f"input {size[0]}x{size[1]} (given)")
    elif task is Task.CLASSIFICATION or not shapes:
        size = CLASSIFIER_INPUT
        notes.append(f"input {size[0]}x{size[1]} (the {'classifier' if shapes else 'default'} input)")
    else:
        median_w = int(np.median([s[1] for s in shapes]))
        median_h = int(np.median([s[0] for s in shapes]))
        size = fitted_size(median_w, median_h, MAX_SIDE[task], _multiple(task, head))
        notes.append(
            f"input {size[0]}x{size[1]} (images {median_w}x{median_h}, longest side at most "
            f"{MAX_SIDE[task]}, aspect kept, never enlarged)"
        )
    if channels is not None:
        chosen_channels = channels
        notes.append(f"channels {channels} (given)")
    elif shapes:
        grey = all(len(s) == 2 for s in shapes)
        chosen_channels = 1 if grey else 3
        notes.append(f"channels {chosen_channels} ({'grey' if grey else 'colour'} images)")
    else:
        chosen_channels = 3
        notes.append("channels 3 (the default)")
    chosen_crop = crop
    if crop is not None:
        notes.append(f"crops {crop[0]}x{crop[1]} (given)")
    elif input_size is None and task in CROP_TASKS and max(size) > CROP_SIDE:
        chosen_crop = (min(size[0], CROP_SIDE), min(size[1], CROP_SIDE))
        notes.append(f"crops {chosen_crop[0]}x{chosen_crop[1]} (served whole at {size[0]}x{size[1]})")
    return Recipe(size, chosen_channels, head, chosen_crop, notes)


def choose_schedule(
    task: Task,
    shapes: Sequence[tuple[int, ...]],
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    patience: int | None = None,
    max_minutes: float | None = None,
) -> Schedule:
    """The schedule for ``task`` on images of ``shapes`` (empty for generated data); given values win."""
    real_segmentation = task is Task.SEGMENTATION and bool(shapes)
    base = SEGMENTATION_SCHEDULE if real_segmentation else GENERAL_SCHEDULE
    why = " (segmentation of real images)" if real_segmentation else ""
    notes: list[str] = []
    chosen_batch = batch_size if batch_size is not None else base.batch_size
    notes.append(f"batch {chosen_batch}" + (" (given)" if batch_size is not None else why))
    budget = max_minutes if max_minutes is not None else base.max_minutes
    return Schedule(
        epochs=epochs if epochs is not None else base.epochs,
        batch_size=chosen_batch,
        patience=patience if patience is not None else base.patience,
        max_minutes=budget,
        notes=notes,
    )
