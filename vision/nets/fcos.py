"""Multi-scale anchor-free detector (FCOS-style) at strides 8/16/32, boxes decoded inside the graph.

Why: the CenterNet head runs at one stride (4), where a 400-px scratch and a 3-px pit must share one
size regression in fractions of the image. Here each level regresses distances to the box sides in units
of its own stride (``exp`` of the raw output, so a level covers its scale range with values near 1), and
the assigner (:mod:`vision.nets.assigner`) sends each box to the level that suits it.

Output: one tensor ``(N, P, K + 4)``, the P points of all levels in :func:`vision.nets.assigner.level_points`
order: K class probabilities (sigmoid), then the box ``x_min, y_min, x_max, y_max`` as fractions of the
input. Decoding outside the graph is a score threshold plus per-class NMS, so the ONNX and Keras outputs
are compared box for box. Not yet the default detector: training does not build it yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from vision.nets.assigner import DEFAULT_STRIDES, assign_targets, level_points
from vision.nets.blocks import ImageStandardization, conv_bn_relu, down_stage, scaled
from vision.nets.box_losses import giou_loss

WIDTHS = (16, 32, 48, 96, 160, 64)  # stem, stride 4, 8, 16, 32, neck/head
_PRIOR = 0.01
_CLASS_BIAS = -math.log((1 - _PRIOR) / _PRIOR)
LossFn = Callable[[Any, Any], Any]


@keras.saving.register_keras_serializable(package="lineguard")
class PointBoxes(layers.Layer):
    """Raw side distances ``(N, P, 4)`` (log units of each point's stride) -> boxes as fractions of the
    input. The points are constants of the input size, so ONNX sees a plain add and multiply."""

    def __init__(self, input_width: int, input_height: int, strides: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_width = input_width
        self.input_height = input_height
        self.strides = tuple(strides)
        points = level_points(input_width, input_height, self.strides)
        size = np.array([input_width, input_height, input_width, input_height], np.float32)
        self._centre = np.concatenate([points.xy, points.xy], axis=1) / size
        self._scale = (points.stride[:, None] * np.array([-1, -1, 1, 1], np.float32)) / size

    def call(self, distances: Any) -> Any:
        # Clipped before exp: an untrained head must not overflow to inf (ONNX and Keras would disagree).
        return self._centre + ops.exp(ops.clip(distances, -6.0, 6.0)) * self._scale

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "input_width": self.input_width,
            "input_height": self.input_height,
            "strides": list(self.strides),
        }


def build_fcos_detector(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> keras.Model:
    height, width_px = input_shape[:2]
    if height % 32 or width_px % 32:
        raise ValueError(f"multi-scale detector input must be a multiple of 32, got {width_px}x{height}")
    stem, s4, s8, s16, s32, neck = scaled(WIDTHS, width)
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImageStandardization(name="standardize")(inputs)
    x = conv_bn_relu(x, stem, strides=2, name="stem")
    c4 = down_stage(x, s4, name="stage4")
    c8 = conv_bn_relu(down_stage(c4, s8, name="stage8"), s8, name="stage8_c")
    c16 = conv_bn_relu(down_stage(c8, s16, name="stage16"), s16, name="stage16_c")
    c32 = conv_bn_relu(down_stage(c16, s32, name="stage32"), s32, name="stage32_c")
    p32 = conv_bn_relu(c32, neck, kernel=1, name="p32_lateral")
    p16 = _top_down(p32, c16, neck, "p16")
    p8 = _top_down(p16, c8, neck, "p8")
    # One head shared by the levels (FCOS): the same filters see defects at every scale.
    head_conv = [
        layers.Conv2D(neck, 3, padding="same", activation="relu", name=f"head_{i}") for i in range(2)
    ]
    classify = layers.Conv2D(
        num_classes, 1, bias_initializer=keras.initializers.Constant(_CLASS_BIAS), name="head_classes"
    )
    regress = layers.Conv2D(4, 1, name="head_boxes")
    logits, distances = [], []
    for name, level in (("p8", p8), ("p16", p16), ("p32", p32)):
        y = level
        for conv in head_conv:
            y = conv(y)
        logits.append(layers.Reshape((-1, num_classes), name=f"{name}_classes_flat")(classify(y)))
        distances.append(layers.Reshape((-1, 4), name=f"{name}_boxes_flat")(regress(y)))
    scores = layers.Activation("sigmoid", name="scores")(layers.Concatenate(axis=1, name="classes")(logits))
    boxes = PointBoxes(width_px, height, DEFAULT_STRIDES, name="boxes")(
        layers.Concatenate(axis=1, name="distances")(distances)
    )
    outputs = layers.Concatenate(axis=-1, name="detections")([scores, boxes])
    return keras.Model(inputs, outputs, name="lineguard_fcos_detector")


def _top_down(coarse: Any, fine: Any, filters: int, name: str) -> Any:
    up = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(coarse)
    lateral = conv_bn_relu(fine, filters, kernel=1, name=f"{name}_lateral")
    return conv_bn_relu(layers.Add(name=f"{name}_add")([up, lateral]), filters, name=f"{name}_smooth")


def fcos_loss(num_classes: int, box_weight: float = 2.0, gamma: float = 2.0, alpha: float = 0.25) -> LossFn:
    """Sigmoid focal loss over all points and classes plus GIoU on the positive points, both divided by the
    number of positives. ``y_true`` ``(N, P, K + 4)``: one-hot classes (all zero for background) and the
    assigned box as fractions of the input."""
    k = num_classes

    def loss(y_true: Any, y_pred: Any) -> Any:
        target = y_true[..., :k]
        p = ops.clip(y_pred[..., :k], 1e-6, 1.0 - 1e-6)
        p_true = target * p + (1.0 - target) * (1.0 - p)
        weight = target * alpha + (1.0 - target) * (1.0 - alpha)
        focal = -weight * ops.power(1.0 - p_true, gamma) * ops.log(p_true)
        positive = ops.max(target, axis=-1)
        count = ops.maximum(ops.sum(positive), 1.0)
        box = giou_loss(y_pred[..., k:], y_true[..., k:]) * positive
        return (ops.sum(focal) + box_weight * ops.sum(box)) / count

    return loss


def fcos_targets(
    boxes: np.ndarray, class_ids: np.ndarray, num_classes: int, input_width: int, input_height: int
) -> np.ndarray:
    """Normalized boxes ``(B, 4)`` and class ids -> the loss's ``(P, K + 4)`` target."""
    points = level_points(input_width, input_height)
    size = np.array([input_width, input_height, input_width, input_height], np.float32)
    pixel_boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * size
    classes, assigned = assign_targets(pixel_boxes, np.asarray(class_ids), points)
    target = np.zeros((len(classes), num_classes + 4), np.float32)
    positive = classes >= 0
    target[positive, classes[positive]] = 1.0
    target[:, num_classes:] = assigned / size
    return target
