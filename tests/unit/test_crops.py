"""Crops with their boxes and masks (vision.crops): hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from vision.crops import crop_at, crop_boxes, random_origin, tile_origins
from vision.samples import BoxLabel


def test_a_box_inside_the_crop_is_renormalized_to_the_crop() -> None:
    # 200x100 image, box pixels x 50..70, y 20..40; crop 100x50 at (40, 10).
    box = BoxLabel("pit", 0.25, 0.2, 0.35, 0.4)
    (seen,) = crop_boxes((box,), (200, 100), (40, 10), (100, 50))
    assert seen.label == "pit"
    assert (seen.x_min, seen.y_min, seen.x_max, seen.y_max) == pytest.approx((0.1, 0.2, 0.3, 0.6))


def test_a_box_cut_by_the_edge_is_clipped_while_enough_of_it_stays() -> None:
    # Box x 80..120 (40 px) across the crop's right edge at 100: half of it stays, clipped to 80..100.
    box = BoxLabel("scratch", 0.4, 0.0, 0.6, 0.5)
    (seen,) = crop_boxes((box,), (200, 100), (0, 0), (100, 100), min_visible=0.4)
    assert (seen.x_min, seen.x_max) == pytest.approx((0.8, 1.0))
    assert crop_boxes((box,), (200, 100), (0, 0), (100, 100), min_visible=0.6) == ()


def test_a_box_outside_the_crop_is_dropped() -> None:
    box = BoxLabel("pit", 0.8, 0.8, 0.9, 0.9)
    assert crop_boxes((box,), (200, 100), (0, 0), (100, 50)) == ()


def test_crop_at_cuts_image_and_mask_alike() -> None:
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    mask = np.zeros((6, 8), np.uint8)
    mask[3, 5] = 1
    crop = crop_at(image, (), mask, (4, 2), (4, 3))
    assert crop.image.shape == (3, 4, 3)
    np.testing.assert_array_equal(crop.image, image[2:5, 4:8])
    assert crop.mask is not None and crop.mask[1, 1] == 1 and crop.mask.sum() == 1


def test_a_crop_that_leaves_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match="leaves"):
        crop_at(np.zeros((10, 10), np.uint8), (), None, (5, 0), (6, 6))


def test_tiles_cover_the_image_with_the_fewest_crops() -> None:
    # 640 wide in 256 crops: 3 tiles at 0, 192, 384 (the last ends at 640); height equal to the crop: one row.
    assert tile_origins((640, 256), (256, 256)) == [(0, 0), (192, 0), (384, 0)]
    assert tile_origins((512, 512), (256, 256)) == [(0, 0), (256, 0), (0, 256), (256, 256)]
    assert tile_origins((100, 50), (100, 50)) == [(0, 0)]


def test_random_origins_stay_inside_and_repeat_with_the_seed() -> None:
    first = [random_origin((640, 256), (320, 256), np.random.default_rng([3, i])) for i in range(50)]
    again = [random_origin((640, 256), (320, 256), np.random.default_rng([3, i])) for i in range(50)]
    assert first == again
    assert all(0 <= x <= 320 and y == 0 for x, y in first)
    assert len({x for x, _ in first}) > 10
