"""Which model the harnesses run: ``--model``, else the workers' small test model (a real Keras classifier
trained on synthetic frames and exported to ONNX), trained once into the cache.

The harnesses measure delivery and robustness, not accuracy, so the smallest real model is the right default
(rather than the shipped one): it leaves the two cores to Kafka, MongoDB and the faults.
"""

from __future__ import annotations

from pathlib import Path

from lineguard.settings import default_cache_dir
from schemas.errors import ConfigurationError


def resolve_model(model: Path | None) -> Path:
    if model is not None:
        if not (model / "model.json").exists():
            raise ConfigurationError(f"{model} is not a model artifact directory (no model.json)")
        return model
    directory = default_cache_dir() / "chaos" / "test-model"
    if not (directory / "model.json").exists():
        # The same model the workers' integration tests train: one definition, not a copy.
        from tests.integration.test_workers_support import train_test_model

        train_test_model(directory)
    return directory
