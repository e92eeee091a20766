"""Building blocks shared by the networks."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras
from keras import layers, ops


def conv_bn_relu(
    x: keras.KerasTensor, filters: int, strides: int = 1, kernel: int = 3, name: str = ""
) -> keras.KerasTensor:
    """3x3 convolution (no bias: batch norm adds one), batch norm, ReLU."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(
        x
    )
    # momentum 0.9: the moving statistics must keep up with weights that change fast in short trainings,
    # or inference-mode outputs drift away from what training saw.
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def down_stage(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Halve the resolution, then refine: two 3x3 convolutions, the first with stride 2."""
    x = conv_bn_relu(x, filters, strides=2, name=f"{name}_a")
    return conv_bn_relu(x, filters, name=f"{name}_b")


def up_stage(x: keras.KerasTensor, skip: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Double the resolution and merge the encoder's features at that resolution (U-Net / FPN style)."""
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = conv_bn_relu(x, filters, name=f"{name}_a")
    return conv_bn_relu(x, filters, name=f"{name}_b")


def scaled(widths: tuple[int, ...], multiplier: float) -> tuple[int, ...]:
    """Channel widths times ``multiplier``, rounded to multiples of 8 (at least 8)."""
    return tuple(max(8, round(w * multiplier / 8) * 8) for w in widths)


STANDARDIZATION_EPSILON = 1e-6
_PRESTANDARDIZED = contextvars.ContextVar("lineguard_prestandardized", default=False)


@contextmanager
def inputs_prestandardized() -> Iterator[None]:
    """Networks built inside this block take inputs that are already standardized: their
    :class:`ImageStandardization` passes them through.

    Crop training needs it. The served network standardizes each whole frame. A network fitted on crops
    that standardized each crop by itself would learn under other statistics (a crop of bright metal and a
    crop of dark background look alike after it), and the weights would not fit the frames they serve:
    measured, an anomaly model's image AUROC fell from 0.76 to 0.24. So the training pipeline standardizes
    each crop with its whole frame's statistics, and the fitted network must not do it again."""
    token = _PRESTANDARDIZED.set(True)
    try:
        yield
    finally:
        _PRESTANDARDIZED.reset(token)


@keras.saving.register_keras_serializable(package="lineguard")
class ImageStandardization(layers.Layer):
    """Per image and channel: subtract the mean, divide by the standard deviation.

    Surfaces differ far more between parts (colour, finish, exposure) than a defect differs from its
    surroundings; removing each image's own level and contrast lets the first filters look for local
    deviations instead of memorizing surfaces. Part of the network (not of preprocessing), so it travels
    with the weights to every backend. ``passthrough`` (default: inside :func:`inputs_prestandardized`)
    makes it the identity, for the crop-trained twin of a network; it has no weights either way.
    """

    def __init__(self, passthrough: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.passthrough = _PRESTANDARDIZED.get() if passthrough is None else bool(passthrough)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "passthrough": self.passthrough}

    def call(self, inputs: Any) -> Any:
        if self.passthrough:
            return inputs
        # The statistics in float64. On a low-contrast surface (std ~0.05 around a mean ~0.5) the float32
        # sum over ~40k pixels is off by ~1e-4 relative, in an order that differs between TensorFlow and
        # ONNX Runtime; subtracting the mean cancels most digits, and dividing by the small std magnified
        # the difference to 4e-3 after this layer and 0.015-0.02 at a trained U-Net's output (the failed
        # ONNX parity of segmentation and anomaly models). In float64 both runtimes agree to ~1e-7.
        x = ops.cast(inputs, "float64")
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        variance = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
        return ops.cast((x - mean) / ops.sqrt(variance + STANDARDIZATION_EPSILON), inputs.dtype)
