"""Anomaly model trained on good images only: a convolutional autoencoder and its anomaly map.

The autoencoder squeezes the image through a 1/16-resolution bottleneck; trained on good surfaces it
reproduces texture, lighting and colour but not what it never saw (scratches, pits, stains). The served
model wraps it: the per-pixel squared reconstruction error, averaged over channels and smoothed by a small
box filter (single-pixel sensor noise should not look like a defect), is the anomaly map; its maximum is the
image's anomaly score (``vision.outputs``).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from vision.nets.blocks import conv_bn_relu, down_stage, scaled

WIDTHS = (32, 48, 64, 64, 32)


def build_autoencoder(input_shape: tuple[int, int, int], width: float = 1.0) -> keras.Model:
    if input_shape[0] % 16 or input_shape[1] % 16:
        raise ValueError(
            f"anomaly input size must be a multiple of 16, got {input_shape[1]}x{input_shape[0]}"
        )
    w1, w2, w3, w4, bottleneck = scaled(WIDTHS, width)
    inputs = keras.Input(shape=input_shape, name="image")
    x = down_stage(inputs, w1, name="enc1")
    x = down_stage(x, w2, name="enc2")
    x = down_stage(x, w3, name="enc3")
    x = down_stage(x, w4, name="enc4")
    x = conv_bn_relu(x, bottleneck, kernel=1, name="bottleneck")
    for i, filters in enumerate((w4, w3, w2, w1)):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{i}_up")(x)
        x = conv_bn_relu(x, filters, name=f"dec{i}_a")
    # Linear output: the input may be normalized to any range.
    outputs = layers.Conv2D(input_shape[2], 3, padding="same", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="lineguard_autoencoder")


@keras.saving.register_keras_serializable(package="lineguard")
class AnomalyMap(layers.Layer):
    """``[image, reconstruction] -> (N, H, W, 1)`` smoothed squared error."""

    def __init__(self, smoothing: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smoothing = smoothing

    def call(self, inputs: Any) -> Any:
        image, reconstruction = inputs
        error = ops.mean(ops.square(image - reconstruction), axis=-1, keepdims=True)
        return ops.average_pool(error, self.smoothing, strides=1, padding="same")

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (*input_shape[0][:-1], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smoothing": self.smoothing}


def build_anomaly_model(autoencoder: keras.Model, smoothing: int = 5) -> keras.Model:
    """The served model: image -> anomaly map, sharing the trained autoencoder's weights."""
    image = keras.Input(shape=autoencoder.input_shape[1:], name="image")
    amap = AnomalyMap(smoothing, name="anomaly_map")([image, autoencoder(image)])
    return keras.Model(image, amap, name="lineguard_anomaly")
