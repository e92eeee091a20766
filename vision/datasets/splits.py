"""Deterministic, seeded, stratified train/validation/test splits.

Each image-level label is split on its own, so a rare defect class appears in every split in proportion
(with at least one training image). The same seed and the same files give the same split on any machine:
samples are ordered by key before the seeded shuffle, so the order a file system lists them in does not
matter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from schemas.errors import ConfigurationError
from vision.samples import LabeledDataset, Sample


@dataclass(frozen=True, slots=True)
class DatasetSplit:
    """The three parts of a split dataset (``test`` may be empty)."""

    train: LabeledDataset
    validation: LabeledDataset
    test: LabeledDataset


def _part_sizes(count: int, validation_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    validation = round(count * validation_fraction)
    test = round(count * test_fraction)
    # Keep at least one training example per class: a class the model never sees cannot be learned.
    while count > 0 and count - validation - test < 1:
        if test >= validation and test > 0:
            test -= 1
        else:
            validation -= 1
    return count - validation - test, validation, test


def split_dataset(
    dataset: LabeledDataset, validation_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> DatasetSplit:
    """Split ``dataset`` by its samples' labels into train / validation / test."""
    if not (
        0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1
    ):
        raise ConfigurationError(
            f"split fractions must be >= 0 and sum to < 1 "
            f"(validation {validation_fraction}, test {test_fraction})"
        )
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for sample in dataset.samples:
        by_label[sample.label].append(sample)
    rng = np.random.default_rng(seed)
    parts: tuple[list[Sample], list[Sample], list[Sample]] = ([], [], [])
    for label in sorted(by_label):
        members = sorted(by_label[label], key=lambda s: s.key)
        order = rng.permutation(len(members))
        n_train, n_validation, _ = _part_sizes(len(members), validation_fraction, test_fraction)
        shuffled = [members[i] for i in order]
        parts[0].extend(shuffled[:n_train])
        parts[1].extend(shuffled[n_train : n_train + n_validation])
        parts[2].extend(shuffled[n_train + n_validation :])

    def subset(samples: list[Sample], name: str) -> LabeledDataset:
        ordered = tuple(sorted(samples, key=lambda s: s.key))
        return LabeledDataset(dataset.task, dataset.classes, ordered, f"{dataset.description} [{name}]")

    return DatasetSplit(subset(parts[0], "train"), subset(parts[1], "validation"), subset(parts[2], "test"))
