"""Object detector: CenterNet-style heat-maps plus box offset and size, at 1/4 of the input resolution.

Why CenterNet: no anchors to tune for defects whose shapes range from round pits to long scratches, no
NMS inside the graph (ONNX-friendly: the network is plain convolutions), and one output tensor whose layout
``vision.outputs`` decodes. The backbone is the classifier's stride-2 stem and stages, with a light FPN neck
(1x1 laterals, additive merges) back to stride 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import layers, ops

from vision.nets.blocks import ImageStandardization, conv_bn_relu, down_stage, scaled

OUTPUT_STRIDE = 4
LossFn = Callable[[Any, Any], Any]
WIDTHS = (16, 32, 64, 128, 64, 32)
# Heat-map bias so that every cell starts at P = 0.1: the focal loss is stable from the first step.
_HEAT_BIAS = -math.log((1 - 0.1) / 0.1)


def build_detector(input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0) -> keras.Model:
    if input_shape[0] % 16 or input_shape[1] % 16:
        raise ValueError(
            f"detector input size must be a multiple of 16, got {input_shape[1]}x{input_shape[0]}"
        )
    stem, s1, s2, s3, n2, n1 = scaled(WIDTHS, width)
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImageStandardization(name="standardize")(inputs)
    x = conv_bn_relu(x, stem, strides=2, name="stem")
    c1 = down_stage(x, s1, name="stage1")  # stride 4
    c2 = down_stage(c1, s2, name="stage2")  # stride 8
    c3 = down_stage(c2, s3, name="stage3")  # stride 16
    # A light FPN: 1x1 lateral projections added to the upsampled coarser map, one 3x3 conv per level.
    # The neck runs at stride 4 and dominates the cost, so it stays narrow.
    x = _merge(c3, c2, n2, name="neck8")
    x = _merge(x, c1, n1, name="neck4")
    x = conv_bn_relu(x, n1, name="head")
    heat = layers.Conv2D(
        num_classes,
        1,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(_HEAT_BIAS),
        name="heatmap",
    )(x)
    offset = layers.Conv2D(2, 1, activation="sigmoid", name="offset")(x)
    size = layers.Conv2D(2, 1, activation="sigmoid", name="size")(x)
    outputs = layers.Concatenate(name="detections")([heat, offset, size])
    return keras.Model(inputs, outputs, name="lineguard_detector")


def _merge(coarse: keras.KerasTensor, fine: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    up = layers.UpSampling2D(2, name=f"{name}_up")(
        conv_bn_relu(coarse, filters, kernel=1, name=f"{name}_top")
    )
    lateral = conv_bn_relu(fine, filters, kernel=1, name=f"{name}_lateral")
    return conv_bn_relu(layers.Add(name=f"{name}_add")([up, lateral]), filters, name=f"{name}_smooth")


def centernet_loss(num_classes: int, offset_weight: float = 1.0, size_weight: float = 5.0) -> LossFn:
    """Focal loss on the heat-maps (CenterNet's penalty-reduced variant) plus L1 on offset and size at the
    centre cells. Targets (``vision.nets.targets.detection_targets``) carry one extra channel: 1 at centres.

    Sizes are fractions of the image (a 10 % box is 0.1), so their L1 is weighted up to matter next to the
    heat-map term.
    """
    k = num_classes

    def loss(y_true: Any, y_pred: Any) -> Any:
        heat_true = y_true[..., :k]
        heat_pred = ops.clip(y_pred[..., :k], 1e-4, 1.0 - 1e-4)
        positive = ops.cast(heat_true >= 0.999, "float32")
        positive_term = ops.log(heat_pred) * ops.square(1.0 - heat_pred) * positive
        negative_term = ops.log(1.0 - heat_pred) * ops.square(heat_pred) * ops.power(1.0 - heat_true, 4.0)
        negative_term = negative_term * (1.0 - positive)
        num_positive = ops.maximum(ops.sum(positive), 1.0)
        heat_loss = -(ops.sum(positive_term) + ops.sum(negative_term)) / num_positive
        centre = y_true[..., k + 4 : k + 5]
        num_centres = ops.maximum(ops.sum(centre), 1.0)
        offset_loss = ops.sum(ops.abs(y_pred[..., k : k + 2] - y_true[..., k : k + 2]) * centre) / num_centres
        size_loss = (
            ops.sum(ops.abs(y_pred[..., k + 2 : k + 4] - y_true[..., k + 2 : k + 4]) * centre) / num_centres
        )
        return heat_loss + offset_weight * offset_loss + size_weight * size_loss

    return loss
