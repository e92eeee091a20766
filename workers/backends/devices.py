"""Execution targets: which device a worker runs its model on, and the batch sizes that device wants.

``--device`` (``LINEGUARD_WORKER_DEVICE`` or ``LINEGUARD_DEVICE``) is one of:

- ``cpu``: ONNX Runtime's CPU provider; Keras artifacts on the CPU of the configured Keras backend.
- ``cuda``: ONNX Runtime's CUDA provider (``pip install lineguard[gpu]`` brings ``onnxruntime-gpu``).
- ``tensorrt``: TensorRT first, CUDA for the nodes TensorRT does not take, CPU for the rest.
- ``auto``: the best of those this host has (TensorRT is not chosen by ``auto``: its engine build takes
  minutes per input shape, an operator asks for it knowingly).

A requested GPU target that this host cannot serve falls back to the CPU with exactly one warning line:
a worker that refuses to start because a driver is missing stops a line, a slower worker does not.

Only pure logic lives here (no import of ONNX Runtime or a deep-learning framework at module level), so the
settings layer and the unit tests use it freely.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

DeviceName = Literal["cpu", "cuda", "tensorrt", "auto"]
DEVICES: tuple[str, ...] = ("cpu", "cuda", "tensorrt", "auto")

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"

_WANTED: dict[str, tuple[str, ...]] = {
    "cpu": (CPU_PROVIDER,),
    "cuda": (CUDA_PROVIDER, CPU_PROVIDER),
    "tensorrt": (TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER),
    "auto": (CUDA_PROVIDER, CPU_PROVIDER),
}


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """The ONNX Runtime providers to ask for (in priority order), the device they amount to, and the warning
    to log once when the request could not be met (None when it was)."""

    providers: tuple[str, ...]
    device: Literal["cpu", "cuda", "tensorrt"]
    warning: str | None = None


def check_device(device: str) -> str:
    """The device name, lower-cased; ValueError naming the choices for anything else."""
    name = device.strip().lower()
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return name


def choose_providers(device: str, available: Sequence[str]) -> ProviderChoice:
    """Providers for ``device`` among those this ONNX Runtime build has (``get_available_providers()``)."""
    name = check_device(device)
    have = set(available)
    chosen = tuple(p for p in _WANTED[name] if p in have)
    if CPU_PROVIDER not in chosen:
        chosen = (*chosen, CPU_PROVIDER)  # every build has it, even when it does not list it first
    top: Literal["cpu", "cuda", "tensorrt"] = (
        "tensorrt" if TENSORRT_PROVIDER in chosen else "cuda" if CUDA_PROVIDER in chosen else "cpu"
    )
    warning = None
    if name in ("cuda", "tensorrt") and top != name:
        missing = TENSORRT_PROVIDER if name == "tensorrt" else CUDA_PROVIDER
        warning = (
            f"device {name} requested but ONNX Runtime has no {missing} here "
            f"(available: {', '.join(available) or 'none'}; install lineguard[gpu]); running on {top}"
        )
    return ProviderChoice(chosen, top, warning)


def onnx_providers(device: str) -> ProviderChoice:
    """:func:`choose_providers` for the installed ONNX Runtime; logs the fallback warning (one line)."""
    import onnxruntime as ort

    choice = choose_providers(device, ort.get_available_providers())
    if choice.warning:
        log.warning(choice.warning)
    return choice


def keras_backend_name() -> str:
    """The Keras 3 backend this process uses (``KERAS_BACKEND``, else ``~/.keras/keras.json``, else
    tensorflow), read without importing Keras (whose import loads the backend: TensorFlow takes ~5 s)."""
    configured = os.environ.get("KERAS_BACKEND")
    if configured:
        return configured.strip().lower()
    import json
    from pathlib import Path

    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return str(json.loads(config.read_text()).get("backend", "tensorflow")).lower()
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def keras_device_scope(device: str) -> str | None:
    """The ``keras.device()`` scope for a Keras model on ``device``: ``"cpu:0"`` pins it to the CPU, None
    leaves the backend's own placement (every Keras backend puts work on its first GPU when it has one)."""
    return "cpu:0" if check_device(device) == "cpu" else None


def prefer_keras(device: str, onnx_device: str, has_keras: bool, keras_gpu: bool) -> bool:
    """``--backend auto``: serve the Keras file instead of ONNX when the operator wants a GPU, ONNX Runtime
    can only give the CPU and the Keras backend has a GPU (a host with PyTorch or JAX on CUDA but no
    ``onnxruntime-gpu``)."""
    return device != "cpu" and onnx_device == "cpu" and has_keras and keras_gpu


def nvidia_driver_present() -> bool:
    """Whether this host has an NVIDIA kernel driver (a file check, no CUDA library loaded)."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def keras_has_gpu(backend: str) -> bool:
    """Whether the Keras backend ``backend`` sees a GPU; imports that framework when the host has an NVIDIA
    driver (only called when a GPU is wanted and ONNX Runtime has none)."""
    if not nvidia_driver_present():
        return False  # no driver, no GPU: and importing TensorFlow to learn that costs ~5 s
    try:
        if backend == "torch" and importlib.util.find_spec("torch"):
            import torch

            return bool(torch.cuda.is_available())
        if backend == "jax" and importlib.util.find_spec("jax"):
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "tensorflow" and importlib.util.find_spec("tensorflow"):
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # a broken CUDA install raises anything at all: no GPU, then
        return False
    return False


@dataclass(frozen=True, slots=True)
class BatchDefaults:
    """Batching defaults for a device: the batcher's size cap and in-flight records per batch."""

    max_batch_size: int
    in_flight_batches: int


# CPU: 32 frames of a 128x128 model is ~25 ms of inference on 2 cores, short enough for max_wait_ms=20;
# 16 batches in flight cover a commit interval (see WorkerSettings). A GPU runs 256 frames in about the time
# the CPU runs 8 and wants them queued deep enough that the next batch is decoded while one runs.
_BATCH_DEFAULTS = {
    "cpu": BatchDefaults(max_batch_size=32, in_flight_batches=16),
    "cuda": BatchDefaults(max_batch_size=256, in_flight_batches=8),
    "tensorrt": BatchDefaults(max_batch_size=256, in_flight_batches=8),
}


def batch_defaults(device: str) -> BatchDefaults:
    """Batch defaults for a resolved device (``auto`` counts as the device it resolves to)."""
    return _BATCH_DEFAULTS[resolve_device(device)]


def resolve_device(device: str) -> Literal["cpu", "cuda", "tensorrt"]:
    """The device ``device`` amounts to on this host, without logging (settings use it for defaults).

    ``cpu`` needs no look-up; the others ask ONNX Runtime for its providers when it is installed, and a
    Keras backend on a GPU counts as ``cuda`` too (see :func:`prefer_keras`)."""
    name = check_device(device)
    if name == "cpu":
        return "cpu"
    available: list[str] = []
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    resolved = choose_providers(name, available).device
    if resolved == "cpu" and keras_has_gpu(keras_backend_name()):
        return "cuda"
    return resolved
