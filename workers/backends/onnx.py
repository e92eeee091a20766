"""ONNX Runtime backend: the default on CPU (no TensorFlow import, faster at every batch size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        # Decode threads run beside inference: one ORT pool is enough, spinning threads would steal their CPU.
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid graphs
            raise ConfigurationError(f"cannot load ONNX model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        (output,) = self._session.run([self._output], {self._input: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(output)

    def warm_up(self, input_shape: tuple[int, int, int], batch_size: int) -> None:
        self.predict(np.zeros((max(1, batch_size), *input_shape), dtype=np.float32))
