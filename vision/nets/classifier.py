"""Image classifier: good or which defect.

A stride-2 stem and four stride-2 stages (0.46 M parameters at width 1.0), then global average *and* max
pooling: a defect often covers a few percent of the image, and the max keeps its evidence from being averaged
away by a large clean surface.
"""

from __future__ import annotations

import keras
from keras import layers

from vision.nets.blocks import ImageStandardization, conv_bn_relu, down_stage, scaled

WIDTHS = (16, 32, 64, 96, 128)


def build_classifier(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0, dropout: float = 0.2
) -> keras.Model:
    stem, *stages = scaled(WIDTHS, width)
    inputs = keras.Input(shape=input_shape, name="image")
    x = ImageStandardization(name="standardize")(inputs)
    x = conv_bn_relu(x, stem, strides=2, name="stem")
    for i, filters in enumerate(stages):
        x = down_stage(x, filters, name=f"stage{i + 1}")
    pooled = layers.Concatenate(name="pool")(
        [layers.GlobalAveragePooling2D(name="avg")(x), layers.GlobalMaxPooling2D(name="max")(x)]
    )
    pooled = layers.Dropout(dropout, name="dropout")(pooled)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(pooled)
    return keras.Model(inputs, outputs, name="lineguard_classifier")


def classifier_loss() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy()
