"""Focal and soft-Dice losses on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.nets.losses import (
    binary_focal,
    categorical_focal,
    soft_dice_loss,
    weighted_categorical_focal,
)


def _value(x: object) -> float:
    return float(np.asarray(x))


def test_binary_focal_with_gamma_zero_is_cross_entropy() -> None:
    y = np.array([1.0, 0.0], np.float32)
    p = np.array([0.8, 0.4], np.float32)
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert _value(binary_focal(y, p, gamma=0.0)) == pytest.approx(expected, rel=1e-5)


def test_binary_focal_down_weights_easy_pixels() -> None:
    y = np.array([1.0], np.float32)
    p = np.array([0.9], np.float32)
    # (1 - 0.9)^2 * -log(0.9)
    assert _value(binary_focal(y, p, gamma=2.0)) == pytest.approx(0.01 * -math.log(0.9), rel=1e-4)


def test_categorical_focal_reads_the_true_channel() -> None:
    one_hot = np.array([[0.0, 1.0]], np.float32)
    probs = np.array([[0.25, 0.75]], np.float32)
    assert _value(categorical_focal(one_hot, probs, gamma=1.0)) == pytest.approx(
        0.25 * -math.log(0.75), rel=1e-5
    )


def test_soft_dice_of_perfect_and_disjoint_masks() -> None:
    mask = np.zeros((1, 4, 4, 1), np.float32)
    mask[0, :2, :2] = 1.0
    assert _value(soft_dice_loss(mask, mask, smooth=0.0)) == pytest.approx(0.0, abs=1e-6)
    assert _value(soft_dice_loss(mask, 1.0 - mask, smooth=0.0)) == pytest.approx(1.0)
    # Half the predicted region right: 2 * 4 / (4 + 8) = 2/3.
    pred = np.zeros_like(mask)
    pred[0, :2, :4] = 1.0
    assert _value(soft_dice_loss(mask, pred, smooth=0.0)) == pytest.approx(1 / 3, rel=1e-5)


def test_weighted_categorical_focal_is_a_weighted_mean_over_pixels() -> None:
    # A background pixel (p_true 0.8, weight 1) and a defect pixel (p_true 0.6, weight 3), gamma 0:
    # (1 * -log 0.8 + 3 * -log 0.6) / (1 + 3).
    one_hot = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    probs = np.array([[0.8, 0.2], [0.4, 0.6]], np.float32)
    expected = (-math.log(0.8) - 3 * math.log(0.6)) / 4
    value = weighted_categorical_focal(one_hot, probs, gamma=0.0, positive_weight=3.0)
    assert _value(value) == pytest.approx(expected, rel=1e-5)
    # gamma 2: each term times (1 - p_true)^2 = 0.04 and 0.16.
    expected_focal = (0.04 * -math.log(0.8) + 3 * 0.16 * -math.log(0.6)) / 4
    value = weighted_categorical_focal(one_hot, probs, gamma=2.0, positive_weight=3.0)
    assert _value(value) == pytest.approx(expected_focal, rel=1e-5)


def test_weighted_categorical_focal_with_weight_one_is_the_plain_focal_loss() -> None:
    one_hot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], np.float32)
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]], np.float32)
    assert _value(weighted_categorical_focal(one_hot, probs, 2.0, 1.0)) == pytest.approx(
        _value(categorical_focal(one_hot, probs, 2.0)), rel=1e-6
    )
    # Every defect class (channels 1 and 2) gets the weight: (0.09*-log0.7 + w*(0.36*-log0.4 +
    # 0.5625*-log0.25)) / (1 + 2w) with w = 5.
    terms = [0.09 * -math.log(0.7), 0.36 * -math.log(0.4), 0.5625 * -math.log(0.25)]
    expected = (terms[0] + 5 * (terms[1] + terms[2])) / 11
    assert _value(weighted_categorical_focal(one_hot, probs, 2.0, 5.0)) == pytest.approx(expected, rel=1e-5)
