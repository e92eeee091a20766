"""Segmentation network: a small U-Net with a per-pixel softmax over background + defect classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers, ops

from vision.nets.blocks import ImageStandardization, conv_bn_relu, down_stage, scaled, up_stage
from vision.nets.losses import categorical_focal, soft_dice_loss

LossFn = Callable[[Any, Any], Any]
WIDTHS = (16, 24, 32, 64, 96)


def build_segmenter(input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0) -> keras.Model:
    """``num_classes`` defect classes; the output has ``num_classes + 1`` channels, background first."""
    if input_shape[0] % 16 or input_shape[1] % 16:
        raise ValueError(
            f"segmenter input size must be a multiple of 16, got {input_shape[1]}x{input_shape[0]}"
        )
    w0, w1, w2, w3, w4 = scaled(WIDTHS, width)
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImageStandardization(name="standardize")(inputs)
    e0 = conv_bn_relu(x, w0, name="enc0")
    e1 = down_stage(e0, w1, name="enc1")
    e2 = down_stage(e1, w2, name="enc2")
    e3 = down_stage(e2, w3, name="enc3")
    x = down_stage(e3, w4, name="enc4")
    x = up_stage(x, e3, w3, name="dec3")
    x = up_stage(x, e2, w2, name="dec2")
    x = up_stage(x, e1, w1, name="dec1")
    x = up_stage(x, e0, w0, name="dec0")
    outputs = layers.Conv2D(num_classes + 1, 1, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lineguard_segmenter")


def segmentation_loss(num_classes: int, dice_weight: float = 1.0, gamma: float = 2.0) -> LossFn:
    """Focal loss over the softmax plus soft Dice over the defect classes.

    Defects cover a few percent of the pixels (pits: well under 1 %); cross-entropy alone is satisfied by
    predicting background everywhere. Focal loss takes the weight off the easy background pixels, and the
    Dice term scores the defect region's overlap whatever its size.
    """

    def loss(y_true: Any, y_pred: Any) -> Any:
        target = ops.one_hot(ops.cast(y_true[..., 0], "int32"), num_classes + 1)
        focal = categorical_focal(target, y_pred, gamma)
        return focal + dice_weight * soft_dice_loss(target[..., 1:], y_pred[..., 1:])

    return loss
