"""ONNX Runtime backend: the default wherever the artifact has ``model.onnx``.

Providers come from ``--device`` (:mod:`workers.backends.devices`): the CPU provider on CPU hosts (no
TensorFlow import, faster than TensorFlow at every batch size), CUDA or TensorRT with ``onnxruntime-gpu``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import ConfigurationError
from workers.backends.devices import CUDA_PROVIDER, TENSORRT_PROVIDER, onnx_providers


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 0, device: str = "cpu") -> None:
        import onnxruntime as ort

        choice = onnx_providers(device)
        self.device = choice.device
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        # Decode threads run beside inference: one ORT pool is enough, spinning threads would steal their CPU.
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=_provider_options(choice.providers, path)
            )
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid graphs
            raise ConfigurationError(f"cannot load ONNX model {path}: {exc}") from exc
        self.providers = tuple(self._session.get_providers())
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        (output,) = self._session.run([self._output], {self._input: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(output)

    def warm_up(self, input_shape: tuple[int, int, int], batch_size: int) -> None:
        self.predict(np.zeros((max(1, batch_size), *input_shape), dtype=np.float32))


def _provider_options(providers: tuple[str, ...], path: Path) -> list[Any]:
    """Provider list with the options lineguard wants on a GPU.

    TensorRT builds an engine per input shape (minutes): it is cached per model file under
    ``~/.cache/lineguard/tensorrt`` (never inside the artifact: registry copies are checksummed), in FP16
    (defect scores move by ~1e-3, far below any decision threshold). CUDA keeps cuDNN's exhaustive
    algorithm search off: it re-searches for every new batch size the dynamic batcher produces.
    """
    out: list[Any] = []
    for provider in providers:
        if provider == TENSORRT_PROVIDER:
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
            cache = Path.home() / ".cache" / "lineguard" / "tensorrt" / digest
            out.append(
                (
                    provider,
                    {
                        "trt_fp16_enable": True,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache),
                    },
                )
            )
        elif provider == CUDA_PROVIDER:
            out.append((provider, {"cudnn_conv_algo_search": "HEURISTIC"}))
        else:
            out.append(provider)
    return out
