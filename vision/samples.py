"""The in-memory shape of labelled data, shared by dataset loaders, the synthetic generator, training,
evaluation and curation. Loaders return these; nothing downstream knows which file format they came from.

The task a dataset is labelled for is the contract's :class:`~schemas.vocabulary.Task`, the one vocabulary
models, records and CLIs share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from schemas.vocabulary import Task


@dataclass(frozen=True, slots=True)
class BoxLabel:
    """A labelled box, normalized to [0, 1] of the image width and height."""

    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled image.

    ``load_image`` returns the pixels as uint8, HxW (grey) or HxWx3 (BGR, OpenCV's order), so big datasets
    are read lazily. ``label`` is the image-level class ("good" for a part without defects);
    ``mask`` (HxW uint8, 0 = background, k = k-th defect class counted from 1 in the dataset's class list)
    is loaded lazily too.
    """

    key: str
    load_image: Callable[[], np.ndarray]
    label: str
    boxes: tuple[BoxLabel, ...] = ()
    load_mask: Callable[[], np.ndarray] | None = None
    source_path: Path | None = None


@dataclass(frozen=True, slots=True)
class LabeledDataset:
    """Samples plus the class list they are labelled with. ``classes[0]`` is "good" for classification."""

    task: Task
    classes: tuple[str, ...]
    samples: Sequence[Sample] = field(default_factory=tuple)
    description: str = ""

    def __len__(self) -> int:
        return len(self.samples)
