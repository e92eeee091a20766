"""The synthetic generator: deterministic frames whose labels, boxes and masks agree with each other."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.vocabulary import Task
from vision.synthetic import (
    DEFAULT_DEFECT_CLASSES,
    GOOD_LABEL,
    SyntheticDefectGenerator,
    dataset_classes,
    synthetic_dataset,
)


@pytest.fixture(scope="module")
def generator() -> SyntheticDefectGenerator:
    return SyntheticDefectGenerator(width=96, height=80, defect_rate=0.6, seed=11, surface="mixed")


def test_same_seed_and_index_give_the_same_frame(generator: SyntheticDefectGenerator) -> None:
    twin = SyntheticDefectGenerator(width=96, height=80, defect_rate=0.6, seed=11, surface="mixed")
    for index in (0, 5, 17):
        first, second = generator.generate(index), twin.generate(index)
        assert first.image is not None and second.image is not None
        np.testing.assert_array_equal(first.image, second.image)
        np.testing.assert_array_equal(first.mask, second.mask)
        assert (first.label, first.boxes) == (second.label, second.boxes)


def test_frames_do_not_depend_on_generation_order(generator: SyntheticDefectGenerator) -> None:
    later = generator.generate(9)
    for index in range(9):
        generator.generate(index)
    again = generator.generate(9)
    assert later.image is not None and again.image is not None
    np.testing.assert_array_equal(later.image, again.image)


def test_different_seeds_give_different_frames() -> None:
    a = SyntheticDefectGenerator(width=64, height=64, seed=1).generate(0).image
    b = SyntheticDefectGenerator(width=64, height=64, seed=2).generate(0).image
    assert a is not None and b is not None
    assert not np.array_equal(a, b)


def test_shapes_and_dtypes() -> None:
    colour = SyntheticDefectGenerator(width=96, height=64, channels=3, seed=0).generate(0)
    grey = SyntheticDefectGenerator(width=96, height=64, channels=1, seed=0).generate(0)
    assert colour.image is not None and grey.image is not None
    assert colour.image.shape == (64, 96, 3) and colour.image.dtype == np.uint8
    assert grey.image.shape == (64, 96) and grey.image.dtype == np.uint8
    assert colour.mask.shape == (64, 96) and colour.mask.dtype == np.uint8


def test_labels_agree_with_mask_and_boxes(generator: SyntheticDefectGenerator) -> None:
    seen_defects = 0
    for index in range(60):
        sample = generator.generate(index)
        if sample.label == GOOD_LABEL:
            assert sample.boxes == ()
            assert not sample.mask.any()
            continue
        seen_defects += 1
        class_id = generator.classes.index(sample.label) + 1
        assert set(np.unique(sample.mask)) == {0, class_id}
        assert sample.boxes and all(box.label == sample.label for box in sample.boxes)
        covered = np.zeros_like(sample.mask, dtype=bool)
        for box in sample.boxes:
            assert 0.0 <= box.x_min < box.x_max <= 1.0 and 0.0 <= box.y_min < box.y_max <= 1.0
            x0, x1 = round(box.x_min * generator.width), round(box.x_max * generator.width)
            y0, y1 = round(box.y_min * generator.height), round(box.y_max * generator.height)
            # A box is tight: the mask touches each of its four edges.
            inside = sample.mask[y0:y1, x0:x1] == class_id
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            covered[y0:y1, x0:x1] = True
        # Every defect pixel lies inside some box.
        assert not (sample.mask.astype(bool) & ~covered).any()
    assert seen_defects > 10


def test_generate_labels_matches_generate(generator: SyntheticDefectGenerator) -> None:
    for index in range(20):
        full, labels_only = generator.generate(index), generator.generate_labels(index)
        assert labels_only.image is None
        assert (full.label, full.boxes, full.surface) == (
            labels_only.label,
            labels_only.boxes,
            labels_only.surface,
        )
        np.testing.assert_array_equal(full.mask, labels_only.mask)


def test_defect_rate_is_honoured_and_every_class_appears() -> None:
    gen = SyntheticDefectGenerator(width=32, height=32, defect_rate=0.3, seed=4)
    labels = [gen.generate_labels(i).label for i in range(1000)]
    defect_share = sum(label != GOOD_LABEL for label in labels) / len(labels)
    assert 0.25 < defect_share < 0.35
    assert set(labels) == {GOOD_LABEL, *DEFAULT_DEFECT_CLASSES}


def test_defects_change_the_pixels_they_label() -> None:
    gen = SyntheticDefectGenerator(width=128, height=128, defect_rate=1.0, seed=5, classes=("spot",))
    clean = SyntheticDefectGenerator(width=128, height=128, defect_rate=0.0, seed=5, classes=("spot",))
    sample, background = gen.generate(3), clean.generate(3)
    assert sample.image is not None and background.image is not None
    inside = sample.mask > 0
    # Same surface, with and without the defect: spots darken the pixels under their mask.
    darkening = background.image[inside].astype(int).mean() - sample.image[inside].astype(int).mean()
    assert darkening > 20
    # Away from the defects (boxes grown by the soft edge), the frames are identical.
    away = np.ones_like(inside)
    for box in sample.boxes:
        x0, x1 = round(box.x_min * 128) - 3, round(box.x_max * 128) + 3
        y0, y1 = round(box.y_min * 128) - 3, round(box.y_max * 128) + 3
        away[max(0, y0) : y1, max(0, x0) : x1] = False
    np.testing.assert_array_equal(sample.image[away], background.image[away])


def test_class_subset_and_mask_ids() -> None:
    gen = SyntheticDefectGenerator(width=64, height=64, defect_rate=1.0, seed=2, classes=("dent", "crack"))
    for index in range(10):
        sample = gen.generate_labels(index)
        assert sample.label in ("dent", "crack")
        assert int(sample.mask.max()) == gen.classes.index(sample.label) + 1


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown defect classes"):
        SyntheticDefectGenerator(classes=("rust",))
    with pytest.raises(ValueError, match="channels"):
        SyntheticDefectGenerator(channels=2)
    with pytest.raises(ValueError, match="defect_rate"):
        SyntheticDefectGenerator(defect_rate=1.5)


def test_synthetic_dataset_is_lazy_and_consistent() -> None:
    dataset = synthetic_dataset(12, "detect", width=64, height=48, seed=3, start_index=100)
    assert dataset.task is Task.DETECTION
    assert dataset.classes == DEFAULT_DEFECT_CLASSES
    assert len(dataset) == 12
    gen = SyntheticDefectGenerator(width=64, height=48, defect_rate=0.5, seed=3, surface="mixed")
    for offset, sample in enumerate(dataset.samples):
        truth = gen.generate(100 + offset)
        assert sample.label == truth.label and sample.boxes == truth.boxes
        assert truth.image is not None and sample.load_mask is not None
        np.testing.assert_array_equal(sample.load_image(), truth.image)
        np.testing.assert_array_equal(sample.load_mask(), truth.mask)
    assert len({sample.key for sample in dataset.samples}) == 12


def test_dataset_classes_per_task() -> None:
    assert dataset_classes(Task.CLASSIFICATION)[0] == GOOD_LABEL
    assert dataset_classes(Task.ANOMALY)[0] == GOOD_LABEL
    assert dataset_classes(Task.SEGMENTATION) == DEFAULT_DEFECT_CLASSES
