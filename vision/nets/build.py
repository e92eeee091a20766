"""One entry point per task: the network to train, the model to serve, its loss; and loading saved models.

Imports Keras (and so TensorFlow): only training, export and the TensorFlow serving backend import this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from schemas.vocabulary import Task
from vision.nets.anomaly import AnomalyMap, build_anomaly_model, build_autoencoder
from vision.nets.classifier import build_classifier, classifier_loss
from vision.nets.detector import build_detector, centernet_loss
from vision.nets.draem import build_defect_discriminator, build_discriminator_serving, discriminator_loss
from vision.nets.fcos import PointBoxes, build_fcos_detector, fcos_loss
from vision.nets.segmenter import build_segmenter, segmentation_loss

ARCHITECTURES = {
    Task.CLASSIFICATION: "lineguard-cnn-classifier",
    Task.DETECTION: "lineguard-centernet",
    Task.SEGMENTATION: "lineguard-unet",
    Task.ANOMALY: "lineguard-simulated-defect-unet",
}
# Detector heads: "centernet" (stride 4, the shipped default) or "fcos" (strides 8/16/32, GIoU).
DETECTOR_HEADS = ("centernet", "fcos")
FCOS_ARCHITECTURE = "lineguard-fcos"
# Anomaly methods: "simulated" (default) learns from good images with painted-in defects; "autoencoder"
# scores the reconstruction error of a model trained on good images alone.
ANOMALY_METHODS = ("simulated", "autoencoder")
AUTOENCODER_ARCHITECTURE = "lineguard-conv-autoencoder"


@dataclass(frozen=True)
class Network:
    """``trainable`` is fitted with ``loss``; ``serving`` (often the same model) is saved and exported.

    They differ for anomaly detection: the autoencoder is trained to reconstruct, the served model outputs
    the anomaly map.
    """

    trainable: keras.Model
    serving: keras.Model
    loss: Callable[..., Any] | keras.losses.Loss
    architecture: str


def build_network(
    task: Task,
    input_shape: tuple[int, int, int],
    classes: tuple[str, ...],
    width: float = 1.0,
    anomaly_method: str = "simulated",
    detector_head: str = "centernet",
) -> Network:
    """The network for ``task``. ``classes`` as in the artifact: classification lists "good" first;
    detection and segmentation list the defect classes; anomaly ignores them."""
    architecture = ARCHITECTURES[task]
    if task is Task.CLASSIFICATION:
        model = build_classifier(input_shape, len(classes), width)
        return Network(model, model, classifier_loss(), architecture)
    if task is Task.DETECTION and detector_head == "fcos":
        model = build_fcos_detector(input_shape, len(classes), width)
        return Network(model, model, fcos_loss(len(classes)), FCOS_ARCHITECTURE)
    if task is Task.DETECTION and detector_head != "centernet":
        raise ValueError(f"unknown detector head {detector_head!r}; expected one of {DETECTOR_HEADS}")
    if task is Task.DETECTION:
        model = build_detector(input_shape, len(classes), width)
        return Network(model, model, centernet_loss(len(classes)), architecture)
    if task is Task.SEGMENTATION:
        model = build_segmenter(input_shape, len(classes), width)
        return Network(model, model, segmentation_loss(len(classes)), architecture)
    if anomaly_method == "simulated":
        discriminator = build_defect_discriminator(input_shape, width)
        return Network(
            discriminator, build_discriminator_serving(discriminator), discriminator_loss(), architecture
        )
    if anomaly_method != "autoencoder":
        raise ValueError(f"unknown anomaly method {anomaly_method!r}; expected one of {ANOMALY_METHODS}")
    autoencoder = build_autoencoder(input_shape, width)
    return Network(
        autoencoder,
        build_anomaly_model(autoencoder),
        keras.losses.MeanSquaredError(),
        AUTOENCODER_ARCHITECTURE,
    )


def load_keras_model(path: str | Path) -> keras.Model:
    """Load a saved serving model (``model.keras``) for inference or export; no optimizer state needed."""
    return keras.saving.load_model(
        Path(path), compile=False, custom_objects={"AnomalyMap": AnomalyMap, "PointBoxes": PointBoxes}
    )
