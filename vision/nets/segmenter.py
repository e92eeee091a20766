"""Segmentation network: a small U-Net with a per-pixel softmax over background + defect classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers, ops

from vision.nets.losses import soft_dice_loss, weighted_categorical_focal
from vision.nets.unet import unet_body

LossFn = Callable[[Any, Any], Any]

# Weight of a defect pixel against a background one in the focal term. 1 (plain focal + Dice) is the
# measured recipe (ball-screw pits, test defect IoU 0.70, README issue 11); higher weights are unmeasured.
DEFAULT_POSITIVE_WEIGHT = 1.0


def build_segmenter(input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0) -> keras.Model:
    """``num_classes`` defect classes; the output has ``num_classes + 1`` channels, background first."""
    inputs, x = unet_body(input_shape, width, "segmenter")
    outputs = layers.Conv2D(num_classes + 1, 1, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lineguard_segmenter")


def segmentation_loss(
    num_classes: int,
    dice_weight: float = 1.0,
    gamma: float = 2.0,
    positive_weight: float = DEFAULT_POSITIVE_WEIGHT,
) -> LossFn:
    """Focal loss over the softmax, defect pixels weighted ``positive_weight``, plus soft Dice over the
    defect classes.

    Defects cover a few percent of the pixels (pits: well under 1 %); cross-entropy alone is satisfied by
    predicting background everywhere. Focal loss takes the weight off the easy background pixels, the
    positive weight keeps the few defect pixels from being outvoted, and the Dice term scores the defect
    region's overlap whatever its size.
    """

    def loss(y_true: Any, y_pred: Any) -> Any:
        target = ops.one_hot(ops.cast(y_true[..., 0], "int32"), num_classes + 1)
        focal = weighted_categorical_focal(target, y_pred, gamma, positive_weight)
        return focal + dice_weight * soft_dice_loss(target[..., 1:], y_pred[..., 1:])

    return loss
