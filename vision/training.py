"""Training: a labelled dataset in, a versioned model artifact out.

The pipeline, and why it looks like this:

1. Split (seeded, stratified by image label) unless a validation set is given. Anomaly models train on the
   good images only and are validated on everything, so the threshold can be calibrated on real defects.
2. Every image goes once through the first half of the serving preprocessing
   (:func:`vision.preprocess.prepare_pixels`: colour order and resize) and is cached as uint8 at the model's
   input size: decoding and resizing big frames every epoch would cost more CPU than the small networks.
3. A ``tf.data`` pipeline draws shuffled indices, augments the cached pixels with their boxes and masks
   (``vision.datasets.augment``, seeded per step so runs repeat exactly), applies the second half of the
   preprocessing (:func:`vision.preprocess.normalize`) and builds the task's targets, on 2 parallel calls.
4. Keras ``fit`` with a cosine learning-rate schedule planned for the steps or the time budget
   (:mod:`vision.schedule`), the task's metric on whole validation frames after every epoch
   (:mod:`vision.validation`), early stopping and a checkpoint that keep the epoch with the best of it
   (validation loss where the frames cannot give a metric), and an optional wall-clock budget.
5. Validation predictions go through the same decoding as serving (:mod:`vision.outputs`); metrics and the
   calibrated decision threshold go into ``model.json`` next to ``model.keras``.

Imports TensorFlow: only the ``train`` command and benchmarks import this module.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import keras
import numpy as np
import tensorflow as tf

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.artifact import (
    ArtifactFiles,
    ModelMetadata,
    TrainingSummary,
    class_counts,
    code_version,
    fingerprint_dataset,
    new_version,
    save_artifact,
)
from vision.calibration import decision_rates, good_only_threshold
from vision.datasets.splits import split_dataset
from vision.fit_setup import fit_callbacks
from vision.metrics import auroc
from vision.nets.blocks import inputs_prestandardized
from vision.nets.build import Network, build_network
from vision.nets.detection_training import point_decoding
from vision.nets.detector import OUTPUT_STRIDE
from vision.outputs import DEFAULT_DECODING, GOOD_LABEL, decode_outputs
from vision.preprocess import PreprocessSpec
from vision.samples import LabeledDataset
from vision.schedule import PlannedSchedule
from vision.train_config import TrainConfig
from vision.training_data import Prepared, prepare, tiled, training_pipeline, validation_arrays
from vision.validation import (
    EpochMetric,
    epoch_metric_name,
    epoch_metric_sample,
    predict_pixels,
    validation_metrics,
)

__all__ = ["TrainConfig", "TrainResult", "train_model"]

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = ".checkpoints"


@dataclass(frozen=True)
class TrainResult:
    artifact: Path
    metadata: ModelMetadata
    history: dict[str, list[float]]
    duration_s: float


def train_model(
    dataset: LabeledDataset,
    config: TrainConfig,
    out_dir: str | Path,
    validation: LabeledDataset | None = None,
) -> TrainResult:
    """Train a model for ``config.task`` on ``dataset`` and write its artifact to ``out_dir``."""
    started = time.perf_counter()
    out = Path(out_dir)
    task = config.task
    if dataset.task is not task:
        raise ConfigurationError(f"dataset is labelled for {dataset.task.value}, not {task.value}")
    train_set, validation_set = _split(dataset, config, validation)
    classes = tuple(dataset.classes)
    spec = config.preprocess_spec()
    _seed_everything(config.seed)

    logger.info(
        "preparing %d training and %d validation images at %dx%d",
        len(train_set),
        len(validation_set),
        spec.width,
        spec.height,
    )
    train_data = prepare(train_set, spec, task)
    validation_data = prepare(validation_set, spec, task)

    # With --crop the fitted network sees crops; the served one is the same network built for the whole
    # input, given the fitted weights afterwards (fully convolutional: same layers, same weight shapes).
    # Crops come standardized with their frame's statistics (training_data.prestandardized).
    train_spec = config.training_spec()
    shape_options = (config.width, config.anomaly_method, config.detector_head)
    network = build_network(task, spec.input_shape, classes, *shape_options)
    fitted = network
    if config.crop is not None:
        with inputs_prestandardized():
            fitted = build_network(task, train_spec.input_shape, classes, *shape_options)
        logger.info("training on %dx%d crops, serving %dx%d", *config.crop, spec.width, spec.height)
    if config.init_from:
        _initialize_from(fitted.trainable, Path(config.init_from))
    steps = max(1, len(train_set) // config.batch_size)
    budget_s = config.max_minutes * 60.0 if config.max_minutes is not None else None
    schedule = PlannedSchedule(config.learning_rate, steps * config.epochs, budget_s)
    fitted.trainable.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=fitted.loss)

    pipeline = training_pipeline(train_data, classes, train_spec, config)
    fit_source = validation_data if config.crop is None else tiled(validation_data, config.crop, train_spec)
    fit_validation = validation_arrays(fit_source, classes, train_spec, task, config)
    checkpoint_dir = out / CHECKPOINT_DIR
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    provisional = _metadata(config, dataset, train_set, validation_set, network, classes, spec, 0)
    epoch_metric, monitor = _epoch_metric(task, validation_data, classes, fitted, network, provisional)
    callbacks = fit_callbacks(
        schedule, checkpoint_dir, config.patience, config.ema_momentum, epoch_metric, monitor
    )
    history = fitted.trainable.fit(
        pipeline,
        steps_per_epoch=steps,
        epochs=config.epochs,
        shuffle=False,  # the pipeline shuffles, seeded; Keras would only warn that it cannot
        validation_data=fit_validation,
        batch_size=config.batch_size,
        callbacks=callbacks,
        verbose=(1 if sys.stdout.isatty() else 2) if config.progress else 0,
    )
    epochs_run = len(history.history.get("loss", []))
    if fitted is not network:
        network.trainable.set_weights(fitted.trainable.get_weights())

    metadata = _metadata(config, dataset, train_set, validation_set, network, classes, spec, epochs_run)
    raw = predict_pixels(network.serving, validation_data.pixels, spec)
    predictions = decode_outputs(raw, metadata)
    metrics, thresholds = validation_metrics(task, predictions, validation_data, classes)
    if task is Task.ANOMALY:
        anomaly_metrics, thresholds = _anomaly_calibration(raw, validation_data, config, thresholds)
        metrics.update(anomaly_metrics)
    duration = time.perf_counter() - started
    assert metadata.training is not None
    metadata = metadata.model_copy(
        update={
            "metrics": metrics,
            "thresholds": {**metadata.thresholds, **thresholds},
            "training": metadata.training.model_copy(update={"duration_s": round(duration, 1)}),
        }
    )
    save_artifact(out, metadata, _inference_copy(network.serving))
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    logger.info(
        "wrote %s %s to %s in %.0f s: %s", task.value, metadata.version, out, duration, _headline(metrics)
    )
    return TrainResult(
        out, metadata, {k: [float(v) for v in vs] for k, vs in history.history.items()}, duration
    )


# -- data -----------------------------------------------------------------------------------------------


def _split(
    dataset: LabeledDataset, config: TrainConfig, validation: LabeledDataset | None
) -> tuple[LabeledDataset, LabeledDataset]:
    if validation is None:
        parts = split_dataset(dataset, validation_fraction=config.validation_fraction, seed=config.seed)
        train_set, validation = parts.train, parts.validation
    else:
        train_set = dataset
    if config.task is Task.ANOMALY:
        # Anomaly models never see a defect in training; validation keeps them for calibration.
        train_set = LabeledDataset(
            train_set.task,
            train_set.classes,
            tuple(s for s in train_set.samples if s.label == GOOD_LABEL),
            train_set.description,
        )
    if len(train_set) < config.batch_size:
        raise ConfigurationError(
            f"{len(train_set)} training images are fewer than one batch of {config.batch_size}; "
            "add data or lower --batch-size"
        )
    if len(validation) == 0:
        raise ConfigurationError("no validation images: add data or raise the validation fraction")
    return train_set, validation


def _initialize_from(model: keras.Model, artifact: Path) -> None:
    """Copy the weights of every layer of ``artifact``'s model with the same name and weight shapes."""
    from vision.nets.build import load_keras_model

    source = {layer.name: layer for layer in load_keras_model(artifact / "model.keras").layers}
    copied = 0
    for layer in model.layers:
        donor = source.get(layer.name)
        weights = donor.get_weights() if donor is not None else []
        if weights and [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
            copied += 1
    if copied == 0:
        raise ConfigurationError(f"--init-from {artifact}: no layer matches this network")
    logger.info("initialized %d of %d layers from %s", copied, len(model.layers), artifact)


def _seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic TensorFlow ops: a run repeats exactly on the
    same machine (a trained-model test must not pass or fail by chance)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _epoch_metric(
    task: Task,
    validation_data: Prepared,
    classes: tuple[str, ...],
    fitted: Network,
    network: Network,
    metadata: ModelMetadata,
) -> tuple[EpochMetric | None, str]:
    """The callback that scores the served network on (a sample of) the whole validation frames after each
    epoch, and the log key the best epoch is then chosen by; ``val_loss`` where no metric can be had."""
    sample = epoch_metric_sample(validation_data)
    name = epoch_metric_name(task, sample)
    if name is None:
        return None, "val_loss"
    key = name.removeprefix("val_")

    def measure() -> float:
        if fitted is not network:  # trained on crops: the served twin takes the (averaged) weights
            network.trainable.set_weights(fitted.trainable.get_weights())
        raw = predict_pixels(network.serving, sample.pixels, metadata.preprocess)
        metrics, _ = validation_metrics(task, decode_outputs(raw, metadata), sample, classes)
        return float(metrics.get(key, 0.0))

    logger.info(
        "the best epoch is the one with the highest %s (%d validation images)", name, len(sample.labels)
    )
    return EpochMetric(name, measure), name


def _inference_copy(model: keras.Model) -> keras.Model:
    """The same layers and weights without the optimizer: a compiled model would save Adam's two moment
    tensors per weight too, tripling the artifact for nothing a server uses."""
    # A new functional model over the same layers: shares the weights, was never compiled.
    return keras.Model(model.inputs, model.outputs, name=model.name)


# -- metadata and metrics ---------------------------------------------------------------------------------


def _metadata(
    config: TrainConfig,
    dataset: LabeledDataset,
    train_set: LabeledDataset,
    validation_set: LabeledDataset,
    network: Network,
    classes: tuple[str, ...],
    spec: PreprocessSpec,
    epochs_run: int,
) -> ModelMetadata:
    decoding = dict(DEFAULT_DECODING[config.task])
    if config.task is Task.DETECTION and config.detector_head == "fcos":
        decoding = point_decoding()
    elif config.task is Task.DETECTION:
        decoding["stride"] = OUTPUT_STRIDE
    return ModelMetadata(
        name=config.name or f"lineguard-{config.task.value}",
        version=config.version or new_version(),
        task=config.task,
        classes=classes,
        preprocess=spec,
        architecture=network.architecture,
        parameters=int(network.serving.count_params()),
        decoding=decoding,
        thresholds={"defect": 0.5},
        training=TrainingSummary(
            dataset=dataset.description,
            fingerprint=fingerprint_dataset(dataset),
            samples=len(train_set),
            validation_samples=len(validation_set),
            class_counts=class_counts(train_set),
            epochs=epochs_run,
            seed=config.seed,
            command=config.command,
            hyperparameters={
                "batch_size": config.batch_size,
                "learning_rate": config.learning_rate,
                "max_epochs": config.epochs,
                "patience": config.patience,
                "augment": config.augment,
                "width": config.width,
                "validation_fraction": config.validation_fraction,
                **({"detector_head": config.detector_head} if config.task is Task.DETECTION else {}),
                **({"ema_momentum": config.ema_momentum} if config.ema_momentum > 0 else {}),
                **({"crop": f"{config.crop[0]}x{config.crop[1]}"} if config.crop is not None else {}),
                **(
                    {
                        "anomaly_method": config.anomaly_method,
                        "false_reject_budget": config.false_reject_budget,
                    }
                    if config.task is Task.ANOMALY
                    else {}
                ),
            },
        ),
        code_version=code_version(),
        files=ArtifactFiles(),
    )


def _anomaly_calibration(
    raw: np.ndarray, data: Prepared, config: TrainConfig, thresholds: dict[str, float]
) -> tuple[dict[str, Any], dict[str, float]]:
    """The good-only threshold (false-reject budget), its rates on the validation defects, pixel AUROC.

    Without validation defects the good-only threshold is the decision threshold; with them, the max-F1
    threshold calibrated on them (already in ``thresholds``) is, and the good-only one is reported beside
    it. The pixel threshold equals the image threshold: the mask then shows the regions that made the image
    a defect (the image score is the map's maximum).
    """
    maps = raw[..., 0]
    scores = maps.reshape(len(maps), -1).max(axis=1)
    is_defect = np.array([label != GOOD_LABEL for label in data.labels])
    metrics: dict[str, Any] = {}
    thresholds = dict(thresholds)
    if (~is_defect).any():
        good_only = good_only_threshold(scores[~is_defect], config.false_reject_budget)
        rates = decision_rates(scores, is_defect, good_only)
        metrics["good_only_threshold"] = good_only
        metrics["good_only_false_reject_rate"] = rates.false_reject_rate
        if is_defect.any():
            metrics["good_only_escape_rate"] = rates.escape_rate
        else:
            thresholds["defect"] = good_only
    if is_defect.any() and data.masks is not None and (data.masks > 0).any():
        # auroc converts with np.asarray: arrays are fine (a list of every pixel would not be).
        pixel_scores = cast(Sequence[float], maps.ravel())
        metrics["pixel_auroc"] = auroc(pixel_scores, cast(Sequence[bool], (data.masks > 0).ravel()))
    if "defect" in thresholds:
        thresholds["pixel"] = thresholds["defect"]
    return metrics, thresholds


def _headline(metrics: dict[str, Any]) -> str:
    keys = ("accuracy", "map50", "mean_iou", "defect_iou", "image_auroc")
    return (
        ", ".join(f"{k}={metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), float)) or "no metrics"
    )
