"""Keras 3 backend: serves ``model.keras`` on whichever Keras backend the process is configured for.

``KERAS_BACKEND`` (or ``~/.keras/keras.json``) picks TensorFlow, JAX or PyTorch; lineguard's networks and
custom layers use ``keras.ops`` only, so one artifact runs on all three, and a GPU host with only PyTorch or
JAX serves lineguard's own models. Each backend gets its cheapest call path, compiled once and reused for
every batch size (``model.predict`` costs 100-150 ms of overhead per call and is never used):

- tensorflow: one ``tf.function`` with a batch dimension of ``None``;
- jax: ``jax.jit`` over ``model.stateless_call`` (retraced once per new batch size, then cached);
- torch: a plain call under ``torch.inference_mode()``;
- anything else: a plain call.

``--device cpu`` pins the model to the CPU through ``keras.device("cpu:0")``; otherwise the backend places
it (each puts work on its first GPU when it has one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import ConfigurationError
from workers.backends.devices import keras_device_scope


class KerasBackend:
    name = "tensorflow"  # replaced by the Keras backend's name once loaded ("keras-jax", "keras-torch")

    def __init__(
        self, path: Path, input_shape: tuple[int, int, int], threads: int = 0, device: str = "cpu"
    ) -> None:
        import keras

        self.keras_backend = keras.backend.backend()
        self.name = "tensorflow" if self.keras_backend == "tensorflow" else f"keras-{self.keras_backend}"
        self.device = "cpu" if keras_device_scope(device) else "auto"
        self._scope = keras_device_scope(device)
        if threads > 0 and self.keras_backend == "tensorflow":
            _tensorflow_threads(threads)
        # vision's loader registers lineguard's custom layers (standardization, anomaly map) with Keras.
        from vision.nets.build import load_keras_model

        try:
            with self._placement():
                self._model = load_keras_model(path)
        except Exception as exc:  # Keras raises ValueError, OSError, ... for a bad file
            raise ConfigurationError(f"cannot load Keras model {path}: {exc}") from exc
        self._call = compiled_call(self._model, self.keras_backend, input_shape)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self._placement():
            output = self._call(np.ascontiguousarray(batch, np.float32))
        if isinstance(output, (list, tuple)):
            output = output[0]
        return to_numpy(output)

    def warm_up(self, input_shape: tuple[int, int, int], batch_size: int) -> None:
        self.predict(np.zeros((max(1, batch_size), *input_shape), dtype=np.float32))

    @contextlib.contextmanager
    def _placement(self) -> Iterator[None]:
        if self._scope is None:
            yield
            return
        import keras

        with keras.device(self._scope):
            yield


def compiled_call(model: Any, backend: str, input_shape: tuple[int, int, int]) -> Callable[[np.ndarray], Any]:
    """The fastest inference call of ``model`` on Keras backend ``backend`` (see the module docstring)."""
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec(shape=(None, *input_shape), dtype=tf.float32)
        return tf.function(lambda x: model(x, training=False), input_signature=[spec])
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def run(x: Any) -> Any:
            output, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return output

        return run
    if backend == "torch":
        import torch

        def run_torch(x: np.ndarray) -> Any:
            with torch.inference_mode():
                return model(x, training=False)

        return run_torch
    return lambda x: model(x, training=False)


def to_numpy(output: Any) -> np.ndarray:
    """A backend tensor (TensorFlow, JAX, a CUDA torch tensor) as a NumPy array."""
    if hasattr(output, "detach"):  # torch: possibly on the GPU
        return np.asarray(output.detach().cpu().numpy())
    return np.asarray(output)


def _tensorflow_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialized in this process (tests, the demo): keep its pools
