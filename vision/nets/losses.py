"""Pixel losses for rare defect pixels: focal loss and soft Dice (segmentation and anomaly maps).

Defects cover well under 1 % of a frame. Plain cross-entropy is then minimized by "background everywhere";
focal loss (Lin et al. 2017) down-weights the pixels the network already gets right, and soft Dice scores
the overlap of the defect region itself, whatever its size.
"""

from __future__ import annotations

from typing import Any

from keras import ops

EPSILON = 1e-6


def binary_focal(y_true: Any, probability: Any, gamma: float = 2.0) -> Any:
    """Mean over pixels of ``-(1 - p_t)**gamma * log(p_t)``; ``p_t`` is the probability of the true class.
    ``gamma = 0`` is binary cross-entropy."""
    p = ops.clip(probability, EPSILON, 1.0 - EPSILON)
    p_true = y_true * p + (1.0 - y_true) * (1.0 - p)
    return -ops.mean(ops.power(1.0 - p_true, gamma) * ops.log(p_true))


def categorical_focal(one_hot: Any, probabilities: Any, gamma: float = 2.0) -> Any:
    """Focal loss over a softmax's channels (last axis), mean over pixels."""
    p = ops.clip(probabilities, EPSILON, 1.0)
    p_true = ops.sum(one_hot * p, axis=-1)
    return -ops.mean(ops.power(1.0 - p_true, gamma) * ops.log(p_true))


def weighted_categorical_focal(
    one_hot: Any, probabilities: Any, gamma: float = 2.0, positive_weight: float = 1.0
) -> Any:
    """Focal loss over a softmax's channels (background first) where each pixel of a defect class weighs
    ``positive_weight`` and a background pixel 1, normalized by the weights' sum (a weighted mean; the
    alpha of Lin et al. 2017 per class). ``positive_weight = 1`` is :func:`categorical_focal`."""
    p = ops.clip(probabilities, EPSILON, 1.0)
    p_true = ops.sum(one_hot * p, axis=-1)
    weight = 1.0 + (positive_weight - 1.0) * ops.sum(one_hot[..., 1:], axis=-1)
    focal = -ops.power(1.0 - p_true, gamma) * ops.log(p_true)
    return ops.sum(weight * focal) / ops.sum(weight)


def soft_dice_loss(y_true: Any, probability: Any, smooth: float = 1.0) -> Any:
    """``1 - (2 |A.B| + s) / (|A| + |B| + s)`` over the whole batch, one term per channel (last axis),
    averaged. Batch-wide sums, so a batch whose images have no defect still gives a useful gradient (false
    alarms raise ``|B|``)."""
    axes = tuple(range(len(y_true.shape) - 1))
    intersection = ops.sum(y_true * probability, axis=axes)
    total = ops.sum(y_true + probability, axis=axes)
    return 1.0 - ops.mean((2.0 * intersection + smooth) / (total + smooth))
