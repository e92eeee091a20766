"""TensorFlow/Keras backend: serves ``model.keras`` through one traced ``tf.function``.

``model.predict`` costs 100-150 ms of overhead per call, so it is never used: the model is called inside a
``tf.function`` with a batch dimension of ``None``, traced once, reused for every batch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError


class KerasBackend:
    name = "tensorflow"

    def __init__(self, path: Path, input_shape: tuple[int, int, int], threads: int = 0) -> None:
        import tensorflow as tf

        if threads > 0:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass  # TensorFlow already initialized in this process (tests, the demo): keep its pools
        # vision's loader registers lineguard's custom layers (standardization, anomaly map) with Keras.
        from vision.nets.build import load_keras_model

        try:
            self._model = load_keras_model(path)
        except Exception as exc:  # Keras raises ValueError, OSError, ... for a bad file
            raise ConfigurationError(f"cannot load Keras model {path}: {exc}") from exc
        spec = tf.TensorSpec(shape=(None, *input_shape), dtype=tf.float32)
        model = self._model
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        output = self._call(np.ascontiguousarray(batch, np.float32))
        if isinstance(output, (list, tuple)):
            output = output[0]
        return np.asarray(output)

    def warm_up(self, input_shape: tuple[int, int, int], batch_size: int) -> None:
        self.predict(np.zeros((max(1, batch_size), *input_shape), dtype=np.float32))
