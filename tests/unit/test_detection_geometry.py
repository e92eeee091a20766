"""Hand-computed cases for the detection geometry: GIoU/CIoU losses, the multi-scale assigner, letterbox."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.letterbox import image_to_input, input_to_image, letterbox_for
from vision.nets.assigner import assign_targets, level_bounds, level_points
from vision.nets.box_losses import ciou_loss, giou_loss, iou


def _value(x: object) -> float:
    return float(np.asarray(x))


def test_giou_overlapping_disjoint_and_identical() -> None:
    a = np.array([0.0, 0.0, 2.0, 2.0], np.float32)
    # Overlap 1, union 7, enclosing 9: GIoU = 1/7 - 2/9.
    assert _value(iou(a, np.array([1.0, 1.0, 3.0, 3.0], np.float32))) == pytest.approx(1 / 7, abs=1e-6)
    assert _value(giou_loss(a, np.array([1.0, 1.0, 3.0, 3.0], np.float32))) == pytest.approx(
        1 - (1 / 7 - 2 / 9), abs=1e-6
    )
    # Disjoint: IoU 0, yet the loss still grows with the gap (enclosing 3, union 2).
    disjoint = giou_loss(np.array([0.0, 0, 1, 1], np.float32), np.array([2.0, 0, 3, 1], np.float32))
    assert _value(disjoint) == pytest.approx(4 / 3, abs=1e-6)
    assert _value(giou_loss(a, a)) == pytest.approx(0.0, abs=1e-6)


def test_ciou_adds_centre_distance_and_aspect_terms() -> None:
    # Same aspect: 1 - 1/7 + rho^2 / c^2 = 1 - 1/7 + 2/18.
    same_aspect = ciou_loss(np.array([0.0, 0, 2, 2], np.float32), np.array([1.0, 1, 3, 3], np.float32))
    assert _value(same_aspect) == pytest.approx(1 - 1 / 7 + 2 / 18, abs=1e-6)
    # A lying 2x1 box against a standing 1x2 one: IoU 1/3, rho^2 0.5, c^2 8, v from atan(1/2) - atan(2).
    v = 4 / math.pi**2 * (math.atan(0.5) - math.atan(2.0)) ** 2
    alpha = v / (1 - 1 / 3 + v)
    crossed = ciou_loss(np.array([0.0, 0, 2, 1], np.float32), np.array([0.0, 0, 1, 2], np.float32))
    assert _value(crossed) == pytest.approx(1 - 1 / 3 + 0.5 / 8 + alpha * v, abs=1e-5)
    # Batched: one loss per pair.
    unit = np.broadcast_to(np.array([0.0, 0.0, 1.0, 1.0], np.float32), (3, 5, 4))
    batch = ciou_loss(unit, unit)
    assert np.asarray(batch).shape == (3, 5)
    np.testing.assert_allclose(np.asarray(batch), 0.0, atol=1e-6)


def test_level_points_and_bounds() -> None:
    points = level_points(64, 64)
    assert len(points.xy) == 64 + 16 + 4
    np.testing.assert_array_equal(points.xy[0], [4, 4])
    np.testing.assert_array_equal(points.xy[64], [8, 8])
    np.testing.assert_array_equal(points.xy[80 + 3], [48, 48])
    np.testing.assert_array_equal(level_bounds((8, 16, 32)), [0, 32, 64, np.inf])
    with pytest.raises(ValueError, match="stride 32"):
        level_points(48, 64)


def test_small_box_goes_to_stride_8_and_large_box_to_stride_16() -> None:
    points = level_points(64, 64)
    boxes = np.array([[4, 4, 20, 20], [0, 0, 64, 64]], np.float32)
    classes, targets = assign_targets(boxes, np.array([2, 0]), points)
    # Small: only the stride-8 point at (12, 12) is inside its centre region (row 1, col 1).
    assert np.flatnonzero(classes == 2).tolist() == [9]
    np.testing.assert_array_equal(targets[9], [4, 4, 20, 20])
    # Large: the centre 2x2 points of stride 16 (largest side distance 40 falls in (32, 64]).
    assert np.flatnonzero(classes == 0).tolist() == [64 + 5, 64 + 6, 64 + 9, 64 + 10]
    assert (classes >= 0).sum() == 5
    np.testing.assert_array_equal(targets[classes < 0], 0.0)


def test_a_point_claimed_by_two_boxes_goes_to_the_smaller() -> None:
    points = level_points(64, 64)
    boxes = np.array([[0, 0, 24, 24], [8, 8, 16, 16]], np.float32)
    classes, _ = assign_targets(boxes, np.array([0, 1]), points)
    assert classes[9] == 1
    # The big box keeps the other eight of its 3x3 stride-8 centre points.
    assert sorted(np.flatnonzero(classes == 0).tolist()) == [0, 1, 2, 8, 10, 16, 17, 18]


def test_a_one_pixel_scratch_still_gets_a_positive() -> None:
    points = level_points(64, 64)
    classes, targets = assign_targets(np.array([[30, 0, 31, 64]], np.float32), np.array([1]), points)
    # No cell centre lies inside a 1-px-wide box: the nearest stride-8 point to its centre (30.5, 32) is
    # (28, 28), row 3, col 3 (ties on y go to the first row).
    assert np.flatnonzero(classes == 1).tolist() == [27]
    np.testing.assert_array_equal(targets[27], [30, 0, 31, 64])


def test_no_boxes_is_all_background() -> None:
    classes, targets = assign_targets(np.zeros((0, 4)), np.zeros(0), level_points(32, 32))
    assert (classes == -1).all() and not targets.any()


def test_letterbox_keeps_aspect_and_maps_boxes_both_ways() -> None:
    box = letterbox_for(200, 100, 320, 320)
    assert (box.scale, box.content_width, box.content_height, box.pad_x, box.pad_y) == (1.6, 320, 160, 0, 80)
    on_image = np.array([[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.25, 0.1]])
    on_input = image_to_input(on_image, box)
    np.testing.assert_allclose(on_input[0], [0.5, 0.5, 1.0, 0.75])
    np.testing.assert_allclose(on_input[1], [0.0, 0.25, 0.25, 0.3])
    np.testing.assert_allclose(input_to_image(on_input, box), on_image)
    # A predicted box that reaches into the padding ends at the image's edge.
    np.testing.assert_allclose(input_to_image(np.array([[0.0, 0.0, 1.0, 0.3]]), box), [[0, 0, 1, 0.1]])


def test_small_images_are_not_blown_up_without_upscaling() -> None:
    box = letterbox_for(100, 50, 320, 320, allow_upscale=False)
    assert (box.scale, box.pad_x, box.pad_y) == (1.0, 110, 135)
    np.testing.assert_allclose(
        image_to_input(np.array([[0.0, 0.0, 1.0, 1.0]]), box), [[110 / 320, 135 / 320, 210 / 320, 185 / 320]]
    )
    assert letterbox_for(100, 50, 320, 320).scale == 3.2
    with pytest.raises(ValueError, match="positive"):
        letterbox_for(0, 50, 320, 320)
