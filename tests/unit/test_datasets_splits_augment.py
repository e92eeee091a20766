"""Seeded stratified splits and augmentations that keep boxes and masks on the pixels they label."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.datasets.augment import AugmentConfig, Augmenter, augment, flip_boxes
from vision.datasets.splits import split_dataset
from vision.samples import BoxLabel, LabeledDataset, Sample


def dataset_of(counts: dict[str, int]) -> LabeledDataset:
    samples = [
        Sample(key=f"{label}/{i:03d}", load_image=lambda: np.zeros((2, 2), np.uint8), label=label)
        for label, n in counts.items()
        for i in range(n)
    ]
    return LabeledDataset(Task.CLASSIFICATION, tuple(counts), tuple(samples))


def test_split_is_stratified_disjoint_and_complete() -> None:
    dataset = dataset_of({"good": 50, "scratch": 20, "dent": 10})
    split = split_dataset(dataset, validation_fraction=0.2, test_fraction=0.1, seed=7)
    parts = [split.train, split.validation, split.test]
    keys = [s.key for part in parts for s in part.samples]
    assert len(keys) == len(set(keys)) == 80
    # Per class: validation round(n * 0.2), test round(n * 0.1), the rest train.
    assert Counter(s.label for s in split.validation.samples) == {"good": 10, "scratch": 4, "dent": 2}
    assert Counter(s.label for s in split.test.samples) == {"good": 5, "scratch": 2, "dent": 1}
    assert Counter(s.label for s in split.train.samples) == {"good": 35, "scratch": 14, "dent": 7}
    assert split.train.classes == dataset.classes


def test_split_is_deterministic_per_seed_and_independent_of_listing_order() -> None:
    dataset = dataset_of({"good": 30, "crack": 12})
    reversed_dataset = LabeledDataset(dataset.task, dataset.classes, tuple(reversed(dataset.samples)))
    first = split_dataset(dataset, 0.25, seed=3)
    again = split_dataset(reversed_dataset, 0.25, seed=3)
    other = split_dataset(dataset, 0.25, seed=4)
    keys = [s.key for s in first.validation.samples]
    assert keys == [s.key for s in again.validation.samples]
    assert keys != [s.key for s in other.validation.samples]


def test_rare_class_keeps_a_training_example() -> None:
    split = split_dataset(dataset_of({"good": 10, "rare": 1, "pair": 2}), validation_fraction=0.5, seed=0)
    train_labels = Counter(s.label for s in split.train.samples)
    assert train_labels["rare"] == 1 and train_labels["pair"] == 1


def test_bad_fractions_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="split fractions"):
        split_dataset(dataset_of({"good": 4}), validation_fraction=0.6, test_fraction=0.5)


GEOMETRY_ONLY = AugmentConfig(brightness=0, contrast=0, max_noise_std=0, blur_probability=0)


def planted(height: int = 60, width: int = 80) -> tuple[np.ndarray, np.ndarray, BoxLabel]:
    """An image with a bright rectangle at x 10..29, y 5..19, its mask and its box."""
    image = np.full((height, width, 3), 40, dtype=np.uint8)
    image[5:20, 10:30] = 220
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[5:20, 10:30] = 1
    return image, mask, BoxLabel("spot", 10 / width, 5 / height, 30 / width, 20 / height)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h


def test_flips_move_boxes_masks_and_pixels_together() -> None:
    image, mask, box = planted()
    config = AugmentConfig(
        horizontal_flip=1.0,
        vertical_flip=1.0,
        max_rotation_degrees=0,
        brightness=0,
        contrast=0,
        max_noise_std=0,
        blur_probability=0,
    )
    out = augment(image, (box,), mask, config, np.random.default_rng(0))
    (moved,) = out.boxes
    assert out.mask is not None
    assert (moved.x_min, moved.y_min, moved.x_max, moved.y_max) == pytest.approx(mask_box(out.mask))
    assert (moved.x_min, moved.y_min, moved.x_max, moved.y_max) == pytest.approx(
        (0.625, 40 / 60, 0.875, 55 / 60)
    )
    assert np.array_equal(out.image[..., 0] > 128, out.mask == 1)
    (back,) = flip_boxes(flip_boxes((box,), True, True), True, True)
    assert (back.x_min, back.y_min, back.x_max, back.y_max) == pytest.approx(
        (box.x_min, box.y_min, box.x_max, box.y_max)
    )


@pytest.mark.parametrize("seed", range(5))
def test_rotation_keeps_the_mask_inside_the_box(seed: int) -> None:
    image, mask, box = planted()
    out = augment(image, (box,), mask, GEOMETRY_ONLY, np.random.default_rng(seed))
    (moved,) = out.boxes
    assert out.mask is not None and out.mask.shape == mask.shape
    x0, y0, x1, y1 = mask_box(out.mask)
    pixel = 1.5 / 60  # nearest-neighbour resampling may move an edge by a pixel
    assert moved.x_min - pixel <= x0 and moved.y_min - pixel <= y0
    assert x1 <= moved.x_max + pixel and y1 <= moved.y_max + pixel
    # A rotation of at most 10 degrees grows a 20x15 box's envelope only a little.
    assert (moved.x_max - moved.x_min) * 80 < 20 + 15 * np.sin(np.radians(10)) + 2
    bright = out.image[..., 0] > 128
    assert (bright & (out.mask == 1)).sum() / bright.sum() > 0.9


def test_photometric_changes_leave_labels_alone_and_are_seeded() -> None:
    image, mask, box = planted()
    config = AugmentConfig(horizontal_flip=0, vertical_flip=0, max_rotation_degrees=0, blur_probability=1.0)
    first = Augmenter(config, seed=11)(image, (box,), mask)
    second = Augmenter(config, seed=11)(image, (box,), mask)
    assert np.array_equal(first.image, second.image)
    assert not np.array_equal(first.image, image)
    assert first.boxes == (box,) and first.mask is not None and np.array_equal(first.mask, mask)
    assert first.image.dtype == np.uint8 and first.image.shape == image.shape


def test_grey_images_without_labels() -> None:
    image = np.tile(np.arange(50, dtype=np.uint8), (30, 1))
    out = Augmenter(seed=1)(image)
    assert out.image.shape == (30, 50) and out.boxes == () and out.mask is None
