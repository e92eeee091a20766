"""Batched JPEG decode on the GPU (nvJPEG through ``torchvision.io.decode_jpeg(device="cuda")``).

On a GPU host the model is no longer the wall: the CPU JPEG decode is (about 3 ms per 1280x1024 frame per
core, even at reduced scale ~1.2 ms), so 16 cores top out near 5,000-10,000 frames/s while one GPU decodes
and infers more. This module decodes a batch of JPEGs on the GPU, resizes (area-like: antialiased
bilinear, as ``INTER_AREA`` keeps thin scratches when shrinking) and normalizes there, and hands back the
model input, NHWC float32, in :class:`~vision.preprocess.PreprocessSpec`'s colour order and scale.

Used where torch + torchvision with CUDA import (:func:`gpu_decode_support`); the CPU path
(``workers.decode``: simplejpeg at reduced scale, OpenCV) is unchanged and stays the path everywhere else.
Letterboxed models and non-JPEG frames always take the CPU path. The heavy imports happen only in
:class:`NvJpegDecoder`, so selecting a path costs nothing on a CPU host.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vision.preprocess import PreprocessSpec

DecodePath = Literal["cpu", "nvjpeg"]


@dataclass(frozen=True, slots=True)
class GpuDecodeSupport:
    """What this host offers for GPU decode, and why not when it does not."""

    torch: bool
    torchvision: bool
    cuda: bool
    batched_decode: bool  # torchvision >= 0.19 decodes a list of JPEGs in one call
    reason: str = ""


def gpu_decode_support() -> GpuDecodeSupport:
    """Probe torch/torchvision/CUDA; never raises (a broken CUDA install reads as "no GPU decode")."""
    has_torch = importlib.util.find_spec("torch") is not None
    has_tv = has_torch and importlib.util.find_spec("torchvision") is not None
    if not has_tv:
        return GpuDecodeSupport(has_torch, False, False, False, "torch and torchvision are not installed")
    try:
        import torch
        import torchvision.io

        cuda = bool(torch.cuda.is_available())
        batched = hasattr(torchvision.io, "decode_jpeg") and _version(torchvision.__version__) >= (0, 19)
    except Exception as exc:  # import-time CUDA errors come in every type
        return GpuDecodeSupport(True, True, False, False, f"torch does not initialise: {exc}")
    reason = "" if cuda and batched else ("no CUDA device" if not cuda else "torchvision < 0.19")
    return GpuDecodeSupport(True, True, cuda, batched, reason)


def choose_decode_path(
    requested: str, support: GpuDecodeSupport, spec: PreprocessSpec, device: str
) -> tuple[DecodePath, str]:
    """The decode path and why: ``requested`` is ``cpu``, ``nvjpeg`` or ``auto``.

    ``auto`` takes nvJPEG only when the model runs on a GPU too (``device`` not ``cpu``): decoding on a GPU
    and copying every frame back for a CPU model costs more than it saves. An explicit ``nvjpeg`` that this
    host cannot do falls back to the CPU, with the reason (the caller logs it once)."""
    if requested not in ("cpu", "nvjpeg", "auto"):
        raise ValueError(f"unknown decode path {requested!r}; choose cpu, nvjpeg or auto")
    if requested == "cpu":
        return "cpu", "requested"
    if requested == "auto" and device == "cpu":
        return "cpu", "the model runs on the CPU"
    if spec.resize == "letterbox":
        return "cpu", "letterboxed models are preprocessed on the CPU"
    if not (support.cuda and support.batched_decode):
        return "cpu", support.reason or "no GPU decode on this host"
    return "nvjpeg", "torchvision nvJPEG on CUDA"


class NvJpegDecoder:
    """JPEG bytes -> model input on the GPU, a batch at a time (only built where the path is ``nvjpeg``)."""

    def __init__(self, spec: PreprocessSpec, device: str = "cuda") -> None:
        import torch
        import torchvision.io

        self._torch = torch
        self._io = torchvision.io
        self._spec = spec
        self._device = torch.device(device)
        std = torch.tensor(spec.std, dtype=torch.float32, device=self._device)
        self._scale = (spec.scale / std).view(1, -1, 1, 1)
        self._shift = (torch.tensor(spec.mean, dtype=torch.float32, device=self._device) / std).view(
            1, -1, 1, 1
        )
        self._mode = (
            torchvision.io.ImageReadMode.GRAY if spec.channels == 1 else torchvision.io.ImageReadMode.RGB
        )

    def decode(self, jpegs: Sequence[bytes]) -> Any:
        """A ``torch.Tensor`` [N, H, W, C] float32 on the device: decoded, resized, ordered, normalized."""
        torch = self._torch
        encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in jpegs]
        images = self._io.decode_jpeg(encoded, mode=self._mode, device=self._device)
        return self.preprocess(images)

    def preprocess(self, images: Sequence[Any]) -> Any:
        """Decoded CHW uint8 GPU tensors (any sizes) -> the model's NHWC float32 batch."""
        torch = self._torch
        spec = self._spec
        size = (spec.height, spec.width)
        # Frames of one camera share a size: one stacked interpolate per batch; mixed sizes go one by one.
        groups = (
            [torch.stack(list(images))]
            if len({tuple(i.shape) for i in images}) == 1
            else [image.unsqueeze(0) for image in images]
        )
        resized = []
        for group in groups:
            x = group.float()
            if tuple(x.shape[-2:]) != size:
                shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
                x = torch.nn.functional.interpolate(
                    x, size=size, mode="bilinear", antialias=shrink, align_corners=False
                )
            resized.append(x)
        batch = torch.cat(resized)
        if spec.channels == 3 and spec.color_order == "bgr":
            batch = batch.flip(1)
        batch = batch * self._scale - self._shift
        return batch.permute(0, 2, 3, 1).contiguous()


def _version(text: str) -> tuple[int, int]:
    parts = text.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)
