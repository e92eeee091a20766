"""Model backends: load an artifact, warm it up, predict a batch.

ONNX Runtime is the default wherever the artifact has ``model.onnx`` (on CPU it is 1.4-1.9x faster than
TensorFlow for lineguard's models, see DESIGN.md); Keras serves ``model.keras`` otherwise or on request
(``--backend keras``, alias ``tensorflow``), on the configured Keras backend (TensorFlow, JAX or PyTorch).
A framework is imported only when its backend is chosen (TensorFlow: import ~5 s, ~540 MB RSS).

``device`` (:mod:`workers.backends.devices`) picks ONNX Runtime's providers; with ``--backend auto`` on a
host whose ONNX Runtime has no GPU provider but whose Keras backend has a GPU, the Keras file is served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError
from vision.artifact import ModelMetadata, load_metadata
from vision.outputs import Prediction, decode_outputs, unletterbox
from workers.backends.base import InferenceBackend
from workers.backends.devices import (
    check_device,
    choose_providers,
    keras_backend_name,
    keras_has_gpu,
    prefer_keras,
)
from workers.backends.keras import KerasBackend
from workers.backends.onnx import OnnxBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "keras", "tensorflow")


@dataclass(slots=True)
class LoadedModel:
    """An artifact ready to serve: its metadata and a warmed-up backend."""

    path: Path
    metadata: ModelMetadata
    backend: InferenceBackend

    def predict(
        self, batch: np.ndarray, image_sizes: Sequence[tuple[int, int]] | None = None
    ) -> list[Prediction]:
        """Preprocessed NHWC float32 batch -> one prediction per image.

        ``image_sizes`` ((width, height) of each image before preprocessing) matter only for letterboxed
        models, whose boxes and masks are mapped from the padded input back onto the image; without them
        they stay in input coordinates."""
        predictions = decode_outputs(self.backend.predict(batch), self.metadata)
        if image_sizes is not None and self.metadata.preprocess.resize == "letterbox":
            return unletterbox(predictions, image_sizes, self.metadata.preprocess)
        return predictions


def load_model(
    path: Path, backend: str = "auto", threads: int = 0, warm_up_batch: int = 1, device: str = "cpu"
) -> LoadedModel:
    """Load the artifact at ``path`` with the chosen backend and run one warm-up batch.

    Raises ConfigurationError (exit code 2 at the CLI) for a missing or broken artifact or an unknown backend.
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    metadata = load_metadata(path)
    root = path if path.is_dir() else path.parent
    try:
        device = check_device(device)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    chosen = backend
    if chosen == "auto":
        chosen = "onnx" if metadata.files.onnx else "keras"
        if chosen == "onnx" and metadata.files.keras and _keras_serves_gpu_better(device):
            chosen = "keras"
    started = time.perf_counter()
    if chosen == "onnx":
        if not metadata.files.onnx:
            raise ConfigurationError(f"model artifact {root} has no ONNX export; use --backend keras")

        impl: InferenceBackend = OnnxBackend(root / metadata.files.onnx, threads, device)
    else:
        if not metadata.files.keras:
            raise ConfigurationError(f"model artifact {root} has no Keras model; use --backend onnx")

        impl = KerasBackend(root / metadata.files.keras, metadata.preprocess.input_shape, threads, device)
    impl.warm_up(metadata.preprocess.input_shape, warm_up_batch)
    log.info(
        "model %s %s (%s) loaded with %s on %s in %.1f s",
        metadata.name,
        metadata.version,
        metadata.task.value,
        impl.name,
        getattr(impl, "device", device),
        time.perf_counter() - started,
    )
    return LoadedModel(path=root, metadata=metadata, backend=impl)


def _keras_serves_gpu_better(device: str) -> bool:
    """A GPU is wanted, ONNX Runtime has only its CPU provider and the Keras backend has a GPU."""
    if device == "cpu":
        return False
    import onnxruntime as ort

    onnx_device = choose_providers(device, ort.get_available_providers()).device
    if onnx_device != "cpu":
        return False
    return prefer_keras(device, onnx_device, True, keras_has_gpu(keras_backend_name()))
