"""Which model the harnesses run: ``--model``, else the smallest real model (a Keras classifier trained on
synthetic frames through :func:`vision.training.train_model` and exported to ONNX), trained once into the
cache.

The harnesses measure delivery and robustness, not accuracy, so the smallest real model is the right default
(rather than the shipped one): it leaves the two cores to Kafka, MongoDB and the faults. The workers'
integration tests serve the same model (:func:`train_small_classifier`): one definition, not a copy.
"""

from __future__ import annotations

from pathlib import Path

from infra.settings import default_cache_dir
from schemas.errors import ConfigurationError
from schemas.vocabulary import Task

SMALL_MODEL_NAME = "test-classifier"
SMALL_MODEL_VERSION = "t1"
SMALL_MODEL_INPUT = 48  # pixels per side: the frames are resized to this by the shared preprocessing
_TRAINING_FRAMES = 96
_TRAINING_FRAME_SIZE = 128


def resolve_model(model: Path | None) -> Path:
    if model is not None:
        if not (model / "model.json").exists():
            raise ConfigurationError(f"{model} is not a model artifact directory (no model.json)")
        return model
    directory = default_cache_dir() / "chaos" / "small-classifier"
    if not (directory / "model.json").exists():
        train_small_classifier(directory)
    return directory


def train_small_classifier(directory: Path, seed: int = 7) -> Path:
    """Train a narrow classifier for a few epochs on synthetic frames; write a full artifact (Keras weights,
    ONNX, ``model.json``) to ``directory``. Seconds of CPU, a real model: never a stub returning constants."""
    from vision.export import export_onnx
    from vision.synthetic import synthetic_dataset
    from vision.training import TrainConfig, train_model

    dataset = synthetic_dataset(
        _TRAINING_FRAMES,
        Task.CLASSIFICATION,
        width=_TRAINING_FRAME_SIZE,
        height=_TRAINING_FRAME_SIZE,
        seed=seed,
    )
    config = TrainConfig(
        task=Task.CLASSIFICATION,
        input_width=SMALL_MODEL_INPUT,
        input_height=SMALL_MODEL_INPUT,
        epochs=3,
        batch_size=16,
        seed=seed,
        width=0.25,
        augment=False,
        name=SMALL_MODEL_NAME,
        version=SMALL_MODEL_VERSION,
        progress=False,
        command="chaos.model.train_small_classifier",
    )
    result = train_model(dataset, config, directory)
    export_onnx(result.artifact)
    return result.artifact
