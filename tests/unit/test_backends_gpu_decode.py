"""GPU decode path selection (pure logic; this host has no GPU, the device check runs the decoder)."""

from __future__ import annotations

import pytest

from vision.preprocess import PreprocessSpec
from workers.backends.gpu_decode import GpuDecodeSupport, choose_decode_path, gpu_decode_support

SPEC = PreprocessSpec.for_input(224, 224)
LETTERBOX = PreprocessSpec(width=640, height=640, resize="letterbox")
GPU = GpuDecodeSupport(torch=True, torchvision=True, cuda=True, batched_decode=True)
NO_CUDA = GpuDecodeSupport(
    torch=True, torchvision=True, cuda=False, batched_decode=True, reason="no CUDA device"
)


def test_auto_decodes_on_the_gpu_only_when_the_model_is_there_too() -> None:
    assert choose_decode_path("auto", GPU, SPEC, "cuda")[0] == "nvjpeg"
    assert choose_decode_path("auto", GPU, SPEC, "cpu") == ("cpu", "the model runs on the CPU")


def test_cpu_is_kept_when_asked_for_or_when_the_host_cannot() -> None:
    assert choose_decode_path("cpu", GPU, SPEC, "cuda") == ("cpu", "requested")
    assert choose_decode_path("nvjpeg", NO_CUDA, SPEC, "cuda") == ("cpu", "no CUDA device")
    old = GpuDecodeSupport(True, True, True, batched_decode=False, reason="torchvision < 0.19")
    assert choose_decode_path("nvjpeg", old, SPEC, "cuda") == ("cpu", "torchvision < 0.19")


def test_letterboxed_models_stay_on_the_cpu_path() -> None:
    path, why = choose_decode_path("nvjpeg", GPU, LETTERBOX, "cuda")
    assert path == "cpu" and "letterbox" in why


def test_unknown_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="choose cpu, nvjpeg or auto"):
        choose_decode_path("gpu", GPU, SPEC, "cuda")


def test_the_probe_of_this_host_agrees_with_the_choice() -> None:
    support = gpu_decode_support()  # CI: no torch, so no GPU decode, and the reason says why
    usable = support.cuda and support.batched_decode
    assert bool(support.reason) != usable
    assert (choose_decode_path("auto", support, SPEC, "cuda")[0] == "nvjpeg") == usable
