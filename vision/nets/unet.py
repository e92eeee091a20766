"""The U-Net body shared by the segmenter and the simulated-defect anomaly model.

Both must keep the same layer names: `lineguard train --init-from` copies weights between them by name.
"""

from __future__ import annotations

from typing import Any

import keras

from vision.nets.blocks import ImageStandardization, conv_bn_relu, down_stage, scaled, up_stage

WIDTHS = (16, 24, 32, 64, 96)


def unet_body(input_shape: tuple[int, int, int], width: float, what: str) -> tuple[keras.KerasTensor, Any]:
    """``(inputs, features)``: a 4-level U-Net at full resolution; ``what`` names the model in the error
    raised for an input size that is not a multiple of 16."""
    if input_shape[0] % 16 or input_shape[1] % 16:
        raise ValueError(f"{what} input size must be a multiple of 16, got {input_shape[1]}x{input_shape[0]}")
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
    return inputs, up_stage(x, e0, w0, name="dec0")
