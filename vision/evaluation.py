"""``lineguard evaluate``: run a model artifact over labelled data and measure it honestly.

The model sees the data exactly as a worker would feed it: images through the artifact's own
:func:`vision.preprocess.preprocess_batch`, raw outputs through :func:`vision.outputs.decode_outputs`. The
numbers come from :mod:`vision.metrics`; pictures of them from :mod:`vision.report`.

Besides the task's own metrics, every task gets an image-level "defect vs good" view of its ``defect_score``
(AUROC, ROC curve, the max-F1 threshold and the threshold that keeps false rejects of good parts under a
target rate): that is the number a line's decision threshold is set from.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision import metrics as measures
from vision.artifact import ModelMetadata, fingerprint_dataset, load_metadata
from vision.outputs import GOOD_LABEL, Prediction, decode_outputs, unletterbox
from vision.preprocess import PreprocessSpec, preprocess_batch, resize_mask
from vision.samples import LabeledDataset, Sample

logger = logging.getLogger(__name__)

DEFAULT_FALSE_REJECT_RATE = 0.01


def held_out_synthetic_frames(metadata: ModelMetadata) -> tuple[int, int]:
    """(seed, first frame) of synthetic evaluation data the model has never seen: its own training seed (the
    same distribution) from just past the frames it was trained on (``frames=a..b`` in the training summary),
    or frame 1,000,000 when the summary does not say."""
    training = metadata.training
    seed = training.seed if training is not None and training.seed is not None else 0
    found = re.search(r"frames=(\d+)\.\.(\d+)", training.dataset) if training is not None else None
    return seed, int(found.group(2)) + 1 if found else 1_000_000


class RawModel(Protocol):
    """Anything that maps a preprocessed float32 NHWC batch to the model's one raw output array."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def load_raw_model(artifact: Path, metadata: ModelMetadata, backend: str = "auto") -> RawModel:
    """ONNX Runtime when the artifact has an ONNX file (faster on CPU) or ``backend="onnx"``, else Keras."""
    use_onnx = backend == "onnx" or (backend == "auto" and metadata.files.onnx is not None)
    if use_onnx:
        if metadata.files.onnx is None:
            raise ConfigurationError(f"model artifact {artifact} has no ONNX file (export it first)")
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(artifact / metadata.files.onnx), providers=["CPUExecutionProvider"]
        )
        input_name = session.get_inputs()[0].name
        return lambda batch: np.asarray(session.run(None, {input_name: batch})[0])
    if metadata.files.keras is None:
        raise ConfigurationError(f"model artifact {artifact} has neither a Keras nor an ONNX file")
    # The networks' own loader knows their custom layers.
    from vision.nets.build import load_keras_model

    try:
        model = load_keras_model(artifact / metadata.files.keras)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"cannot load Keras model from {artifact}: {exc}") from exc
    return lambda batch: np.asarray(model(batch, training=False))


def predict_dataset(
    model: RawModel,
    metadata: ModelMetadata,
    samples: Sequence[Sample],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
    loaders: int = 2,
) -> list[Prediction]:
    """Predict every sample, ``batch_size`` at a time; ``on_batch(n)`` reports progress.

    The next batch is read and preprocessed on ``loaders`` threads while the model runs on the current one
    (OpenCV releases the GIL), so decoding does not leave the model waiting.
    """
    spec: PreprocessSpec = metadata.preprocess

    def prepare(chunk: Sequence[Sample]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        images = list(pool.map(lambda sample: sample.load_image(), chunk))
        return preprocess_batch(images, spec), [(image.shape[1], image.shape[0]) for image in images]

    chunks = [samples[start : start + batch_size] for start in range(0, len(samples), batch_size)]
    predictions: list[Prediction] = []
    with ThreadPoolExecutor(max_workers=max(1, loaders)) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
        pending = ahead.submit(prepare, chunks[0]) if chunks else None
        for index, chunk in enumerate(chunks):
            assert pending is not None
            batch, sizes = pending.result()
            pending = ahead.submit(prepare, chunks[index + 1]) if index + 1 < len(chunks) else None
            decoded = decode_outputs(model(batch), metadata)
            # As the worker does: a letterboxed model's boxes and masks go back onto each image, so they
            # are scored against labels normalized to the image, not to the padded input.
            if spec.resize == "letterbox":
                decoded = unletterbox(decoded, sizes, spec)
            predictions.extend(decoded)
            if on_batch is not None:
                on_batch(len(chunk))
    return predictions


@dataclass
class Evaluation:
    """Metrics (JSON-ready) plus the curves the report draws, and the samples with their predictions (same
    order) that the report's examples are picked from."""

    metrics: dict[str, Any]
    pr_curves: dict[str, measures.PrecisionRecallCurve] = field(default_factory=dict)
    roc: measures.RocCurve | None = None
    confusion: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    samples: Sequence[Sample] = ()
    predictions: Sequence[Prediction] = ()


def _defect_vs_good(
    samples: Sequence[Sample], predictions: Sequence[Prediction], rate: float
) -> tuple[dict, Any]:
    labels = [sample.label != GOOD_LABEL for sample in samples]
    scores = [p.defect_score for p in predictions]
    summary: dict[str, Any] = {"good": labels.count(False), "defect": labels.count(True)}
    if all(labels) or not any(labels):
        summary["note"] = "needs both good and defect images for AUROC and thresholds"
        return summary, None
    best = measures.max_f1_threshold(scores, labels)
    capped = measures.false_reject_threshold(scores, labels, rate)
    summary.update(
        auroc=measures.auroc(scores, labels),
        max_f1_threshold=_threshold_dict(best),
        false_reject_threshold={"target_false_reject_rate": rate, **_threshold_dict(capped)},
    )
    return summary, measures.roc_curve(scores, labels)


def _threshold_dict(threshold: measures.CalibratedThreshold) -> dict[str, float]:
    return {
        "threshold": threshold.threshold,
        "precision": threshold.precision,
        "recall": threshold.recall,
        "f1": threshold.f1,
        "false_reject_rate": threshold.false_reject_rate,
    }


def _classification(
    samples: Sequence[Sample], predictions: Sequence[Prediction], classes: tuple[str, ...]
) -> Evaluation:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({s.label for s in samples if s.label not in index})
    if unknown:
        raise ConfigurationError(f"the data has classes the model does not know: {', '.join(unknown)}")
    truth = [index[s.label] for s in samples]
    predicted = [index[max(p.class_scores, key=lambda name: p.class_scores[name])] for p in predictions]
    result = measures.classification_metrics(truth, predicted, classes)
    return Evaluation(result, confusion=np.asarray(result["confusion_matrix"]), classes=classes)


def _detection(
    samples: Sequence[Sample], predictions: Sequence[Prediction], classes: tuple[str, ...]
) -> Evaluation:
    truth = [list(s.boxes) for s in samples]
    found = [
        [
            measures.ScoredBox(d.label, d.score, d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max)
            for d in p.detections
        ]
        for p in predictions
    ]
    result = measures.detection_metrics(truth, found, classes)
    # Boxes of classes the model was never taught cannot be found; say so rather than hide them.
    result["ground_truth_classes_unknown_to_model"] = sorted(
        {b.label for boxes in truth for b in boxes} - set(classes)
    )
    curves = {name: measures.precision_recall_curve(truth, found, name, 0.5) for name in result["per_class"]}
    return Evaluation(result, pr_curves=curves, classes=classes)


def _mask_translation(data_classes: tuple[str, ...], model_classes: tuple[str, ...]) -> np.ndarray:
    """A lookup table from the dataset's mask values to the model's (by class name; unknown -> 0)."""
    table = np.zeros(256, dtype=np.uint8)
    for value, name in enumerate(data_classes, start=1):
        if name in model_classes:
            table[value] = model_classes.index(name) + 1
    return table


def _masks(
    samples: Sequence[Sample],
    predictions: Sequence[Prediction],
    classes: tuple[str, ...],
    data_classes: tuple[str, ...] | None = None,
) -> dict[str, Any] | None:
    """Per-class IoU/Dice; ``data_classes`` (when they differ from the model's) renumber the true masks."""
    table = (
        None if data_classes is None or data_classes == classes else _mask_translation(data_classes, classes)
    )
    truth: list[np.ndarray] = []
    predicted: list[np.ndarray] = []
    for sample, prediction in zip(samples, predictions, strict=True):
        if sample.load_mask is None or prediction.mask is None:
            continue
        true_mask = sample.load_mask()
        if table is not None:
            true_mask = table[true_mask]
        # Score at the data's own resolution: the model's mask is enlarged, the truth never shrunk.
        predicted.append(resize_mask(prediction.mask, true_mask.shape[1], true_mask.shape[0]))
        truth.append(true_mask)
    if not truth:
        return None
    result = measures.segmentation_metrics(predicted, truth, classes)
    result["images_without_mask"] = len(samples) - len(truth)
    return result


def evaluate_predictions(
    dataset: LabeledDataset,
    predictions: Sequence[Prediction],
    metadata: ModelMetadata,
    false_reject_rate: float = DEFAULT_FALSE_REJECT_RATE,
) -> Evaluation:
    """Score predictions (one per sample, same order) against the dataset's labels for the model's task."""
    samples = dataset.samples
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    classes = metadata.classes
    if metadata.task is Task.CLASSIFICATION:
        evaluation = _classification(samples, predictions, classes)
    elif metadata.task is Task.DETECTION:
        evaluation = _detection(samples, predictions, classes)
    elif metadata.task is Task.SEGMENTATION:
        scored = _masks(samples, predictions, classes, tuple(dataset.classes))
        evaluation = Evaluation(scored or {"note": "no masks to compare"})
    else:
        evaluation = Evaluation({})
        # Anomaly masks are binary (any defect = 1) on both sides.
        pixel = _masks(samples, predictions, ("defect",))
        if pixel is not None:
            evaluation.metrics["pixel"] = pixel
    defect_view, roc = _defect_vs_good(samples, predictions, false_reject_rate)
    evaluation.metrics["defect_vs_good"] = defect_view
    evaluation.roc = roc
    evaluation.samples, evaluation.predictions = samples, predictions
    return evaluation


def evaluate_artifact(
    artifact: Path,
    dataset: LabeledDataset,
    batch_size: int = 32,
    backend: str = "auto",
    false_reject_rate: float = DEFAULT_FALSE_REJECT_RATE,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[ModelMetadata, Evaluation]:
    """Load ``artifact``, predict ``dataset`` and score it; the metrics carry model and data identities."""
    metadata = load_metadata(artifact)
    if dataset.task is not metadata.task:
        raise ConfigurationError(
            f"model {metadata.name} is a {metadata.task.value} model "
            f"but the data was read for {dataset.task.value}"
        )
    model = load_raw_model(artifact, metadata, backend)
    predictions = predict_dataset(model, metadata, dataset.samples, batch_size, on_batch)
    evaluation = evaluate_predictions(dataset, predictions, metadata, false_reject_rate)
    evaluation.metrics = {
        "model": {"name": metadata.name, "version": metadata.version, "task": metadata.task.value},
        "data": {
            "description": dataset.description,
            "samples": len(dataset),
            "fingerprint": fingerprint_dataset(dataset),
        },
        **evaluation.metrics,
    }
    logger.info("evaluated %s %s on %d images", metadata.name, metadata.version, len(dataset))
    return metadata, evaluation
