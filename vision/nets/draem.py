"""Anomaly model trained on good images plus simulated defects (the discriminative half of DRAEM).

A reconstruction autoencoder trained on good images learns to reproduce defects too (they are just more
texture), which is why its error map barely separates good from bad. This model instead learns the
decision itself: a small U-Net sees good images with simulated defects painted in
(:mod:`vision.simulated_defects`) and outputs, per pixel, the probability that the pixel does not belong to
the surface. It is trained with focal loss + soft Dice on the simulated masks.

The served model adds a box filter over that probability map (one stray pixel is not a defect; DRAEM
scores the max of a mean-filtered map too). Its output keeps the anomaly contract of
:mod:`vision.outputs`: ``(N, H, W, 1)``, the image score is the map's maximum, here in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from vision.nets.losses import binary_focal, soft_dice_loss
from vision.nets.unet import unet_body

DEFAULT_SMOOTHING = 5


def build_defect_discriminator(input_shape: tuple[int, int, int], width: float = 1.0) -> keras.Model:
    """image -> (N, H, W, 1) defect probability, trained on simulated defects."""
    inputs, x = unet_body(input_shape, width, "anomaly")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="defect_probability")(x)
    return keras.Model(inputs, outputs, name="lineguard_defect_discriminator")


def discriminator_loss(gamma: float = 2.0, dice_weight: float = 1.0) -> Callable[[Any, Any], Any]:
    """Focal loss (rare defect pixels) plus soft Dice (the region's overlap) on a one-channel mask."""

    def loss(y_true: Any, y_pred: Any) -> Any:
        return binary_focal(y_true, y_pred, gamma) + dice_weight * soft_dice_loss(y_true, y_pred)

    return loss


def build_discriminator_serving(
    discriminator: keras.Model, smoothing: int = DEFAULT_SMOOTHING
) -> keras.Model:
    """The served model: image -> box-filtered defect probability map, sharing the trained weights."""
    # Flat over the discriminator's own graph (not nesting it as a sub-model): the nested model would be
    # saved with its compile config, whose custom loss a server cannot (and need not) deserialize.
    amap = layers.AveragePooling2D(smoothing, strides=1, padding="same", name="anomaly_map")(
        discriminator.outputs[0]
    )
    return keras.Model(discriminator.inputs, amap, name="lineguard_anomaly")
