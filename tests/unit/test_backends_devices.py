"""Execution targets: provider choice per device (pure logic), settings sized per device, a real CPU run."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from schemas.errors import ConfigurationError
from workers.backends import load_model
from workers.backends.devices import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    TENSORRT_PROVIDER,
    BatchDefaults,
    batch_defaults,
    check_device,
    choose_providers,
    keras_backend_name,
    keras_device_scope,
    prefer_keras,
    resolve_device,
)
from workers.serving import default_model_path
from workers.settings import WorkerSettings

CPU_ONLY = [CPU_PROVIDER]
GPU_BUILD = [TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER]


def test_cpu_asks_for_the_cpu_provider_only_even_on_a_gpu_build() -> None:
    choice = choose_providers("cpu", GPU_BUILD)
    assert choice.providers == (CPU_PROVIDER,)
    assert choice.device == "cpu" and choice.warning is None


def test_cuda_and_tensorrt_keep_the_cpu_provider_last_for_unsupported_nodes() -> None:
    assert choose_providers("cuda", GPU_BUILD).providers == (CUDA_PROVIDER, CPU_PROVIDER)
    trt = choose_providers("tensorrt", GPU_BUILD)
    assert trt.providers == (TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER) and trt.device == "tensorrt"


def test_auto_takes_cuda_when_there_and_never_tensorrt() -> None:
    assert choose_providers("auto", GPU_BUILD).device == "cuda"
    assert TENSORRT_PROVIDER not in choose_providers("auto", GPU_BUILD).providers
    quiet = choose_providers("auto", CPU_ONLY)
    assert quiet.providers == (CPU_PROVIDER,) and quiet.warning is None


def test_a_missing_gpu_provider_falls_back_to_the_cpu_with_one_warning() -> None:
    cuda = choose_providers("cuda", CPU_ONLY)
    assert cuda.providers == (CPU_PROVIDER,) and cuda.device == "cpu"
    assert cuda.warning is not None and "\n" not in cuda.warning and CUDA_PROVIDER in cuda.warning
    trt = choose_providers("tensorrt", [CUDA_PROVIDER, CPU_PROVIDER])  # a CUDA build without TensorRT
    assert trt.providers == (CUDA_PROVIDER, CPU_PROVIDER) and trt.device == "cuda"
    assert trt.warning is not None and TENSORRT_PROVIDER in trt.warning


def test_the_cpu_provider_is_added_when_a_build_does_not_list_it() -> None:
    assert choose_providers("cuda", [CUDA_PROVIDER]).providers == (CUDA_PROVIDER, CPU_PROVIDER)


def test_unknown_devices_are_refused_and_names_are_case_blind() -> None:
    assert check_device(" CUDA ") == "cuda"
    with pytest.raises(ValueError, match="choose one of cpu, cuda, tensorrt, auto"):
        check_device("gpu")


def test_keras_is_preferred_only_for_a_gpu_that_onnx_runtime_cannot_use() -> None:
    assert prefer_keras("auto", "cpu", has_keras=True, keras_gpu=True)
    assert not prefer_keras("cpu", "cpu", has_keras=True, keras_gpu=True)
    assert not prefer_keras("cuda", "cuda", has_keras=True, keras_gpu=True)
    assert not prefer_keras("cuda", "cpu", has_keras=False, keras_gpu=True)
    assert not prefer_keras("cuda", "cpu", has_keras=True, keras_gpu=False)


def test_keras_backend_name_comes_from_the_environment_without_importing_keras(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "JAX")
    assert keras_backend_name() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_backend_name() == "tensorflow"  # no keras.json: Keras' own default
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    assert keras_backend_name() == "torch"
    assert keras_device_scope("cpu") == "cpu:0" and keras_device_scope("cuda") is None


def test_batch_defaults_follow_the_device_this_host_resolves_to() -> None:
    cpu = batch_defaults("cpu")
    assert (cpu.max_batch_size, cpu.in_flight_batches) == (32, 16)
    # Without a GPU (CI) every target resolves to the CPU and keeps the CPU's sizes; with one, 256 x 8.
    expected = cpu if resolve_device("cuda") == "cpu" else BatchDefaults(256, 8)
    assert batch_defaults("cuda") == expected


def test_settings_read_either_device_variable_and_keep_an_explicit_batch_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINEGUARD_DEVICE", "cpu")
    assert WorkerSettings().device == "cpu"
    monkeypatch.setenv("LINEGUARD_WORKER_DEVICE", "tensorrt")
    settings = WorkerSettings(max_batch_size=8)
    assert settings.device == "tensorrt" and settings.max_batch_size == 8
    on_cpu = WorkerSettings(device="cpu")
    assert (on_cpu.max_batch_size, on_cpu.max_in_flight) == (32, 16 * 32)


def test_the_shipped_model_runs_on_the_cpu_when_cuda_is_requested(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="workers.backends.devices"):
        model = load_model(default_model_path(), "onnx", threads=1, device="cuda")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "running on cpu" in warnings[0].getMessage()
    assert getattr(model.backend, "providers", None) == (CPU_PROVIDER,)
    reference = load_model(default_model_path(), "onnx", threads=1, device="cpu")
    rng = np.random.default_rng(3)
    batch = rng.random((4, *model.metadata.preprocess.input_shape), dtype=np.float32)
    got = [p.defect_score for p in model.predict(batch)]
    assert got == pytest.approx([p.defect_score for p in reference.predict(batch)], abs=1e-6)
    assert all(0.0 <= s <= 1.0 for s in got)


def test_an_unknown_device_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown device 'gpu'"):
        load_model(default_model_path(), "onnx", device="gpu")
