"""Model backends: load an artifact, warm it up, predict a batch.

ONNX Runtime is the default wherever the artifact has ``model.onnx`` (on CPU it is 1.4-1.9x faster than
TensorFlow for lineguard's models, see DESIGN.md); TensorFlow/Keras serves ``model.keras`` otherwise or on
request. TensorFlow is imported only when that backend is chosen (import ~5 s, ~540 MB RSS).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError
from vision.artifact import ModelMetadata, load_metadata
from vision.outputs import Prediction, decode_outputs
from workers.backends.base import InferenceBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "tensorflow")


@dataclass(slots=True)
class LoadedModel:
    """An artifact ready to serve: its metadata and a warmed-up backend."""

    path: Path
    metadata: ModelMetadata
    backend: InferenceBackend

    def predict(self, batch: np.ndarray) -> list[Prediction]:
        """Preprocessed NHWC float32 batch -> one prediction per image."""
        return decode_outputs(self.backend.predict(batch), self.metadata)


def load_model(path: Path, backend: str = "auto", threads: int = 0, warm_up_batch: int = 1) -> LoadedModel:
    """Load the artifact at ``path`` with the chosen backend and run one warm-up batch.

    Raises ConfigurationError (exit code 2 at the CLI) for a missing or broken artifact or an unknown backend.
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    metadata = load_metadata(path)
    root = path if path.is_dir() else path.parent
    chosen = backend
    if chosen == "auto":
        chosen = "onnx" if metadata.files.onnx else "tensorflow"
    started = time.perf_counter()
    if chosen == "onnx":
        if not metadata.files.onnx:
            raise ConfigurationError(f"model artifact {root} has no ONNX export; use --backend tensorflow")
        from workers.backends.onnx import OnnxBackend

        impl: InferenceBackend = OnnxBackend(root / metadata.files.onnx, threads)
    else:
        if not metadata.files.keras:
            raise ConfigurationError(f"model artifact {root} has no Keras model; use --backend onnx")
        from workers.backends.keras import KerasBackend

        impl = KerasBackend(root / metadata.files.keras, metadata.preprocess.input_shape, threads)
    impl.warm_up(metadata.preprocess.input_shape, warm_up_batch)
    log.info(
        "model %s %s (%s) loaded with %s in %.1f s",
        metadata.name,
        metadata.version,
        metadata.task.value,
        impl.name,
        time.perf_counter() - started,
    )
    return LoadedModel(path=root, metadata=metadata, backend=impl)
