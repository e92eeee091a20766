"""The one preprocessing function that training and serving share.

A model never sees pixels prepared differently from the ones it was trained on: training pipelines, the
evaluator and every inference backend call :func:`preprocess_batch` with the :class:`PreprocessSpec` stored in
the model artifact. Pure NumPy + OpenCV (no TensorFlow), so ONNX Runtime workers stay light.

Choices, and why:

- Inputs are what OpenCV decodes: HxW grey, HxWx1, HxWx3 BGR or HxWx4 BGRA (alpha dropped). Any size.
- Resizing stretches to the model's input size by default. Boxes and masks are normalized to the image,
  so stretching keeps them valid without bookkeeping, and line cameras have a fixed aspect ratio anyway.
  ``resize="letterbox"`` (models trained elsewhere, e.g. YOLO) keeps the aspect ratio and pads with
  ``pad_value`` (:mod:`vision.letterbox`); the backend maps boxes and masks back onto the image.
- ``interpolation="auto"`` uses ``INTER_AREA`` when shrinking and ``INTER_LINEAR`` when enlarging. Area
  averaging keeps thin defects (a 2 px scratch on a 1280x1024 frame is under half a pixel at 224x224); linear
  sampling at that ratio skips most of their pixels, so a scratch flickers in and out of view. The price:
  about 5 ms per 1280x1024 frame for AREA against 0.2 ms for LINEAR on this machine. A worker that decodes at
  reduced scale (cv2 ``IMREAD_REDUCED_*``) pays less; ``"linear"`` is there for models trained with it.
- Normalization is ``(pixel * scale - mean) / std`` per channel, in the model's channel order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import cv2
import numpy as np

from vision.letterbox import letterbox_for

ColorOrder = Literal["bgr", "rgb", "grey"]
Interpolation = Literal["auto", "area", "linear"]
ResizeMode = Literal["stretch", "letterbox"]

_CV2_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}


@dataclass(frozen=True, slots=True)
class PreprocessSpec:
    """How pixels become a model input; stored in the artifact's metadata."""

    width: int
    height: int
    channels: int = 3
    color_order: ColorOrder = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    interpolation: Interpolation = "auto"
    resize: ResizeMode = "stretch"
    pad_value: int = 114  # grey of the letterbox padding (YOLO's convention)

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"input size must be positive, got {self.width}x{self.height}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if (self.channels == 1) != (self.color_order == "grey"):
            raise ValueError("color_order 'grey' goes with channels=1, and only with it")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values each")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if self.interpolation not in ("auto", "area", "linear"):
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.resize not in ("stretch", "letterbox"):
            raise ValueError(f"unknown resize mode {self.resize!r}; choose stretch or letterbox")
        if not 0 <= self.pad_value <= 255:
            raise ValueError(f"pad_value must be 0-255, got {self.pad_value}")

    @classmethod
    def for_input(cls, width: int, height: int, channels: int = 3) -> PreprocessSpec:
        """lineguard's default for a model of this input: RGB (or grey), pixels scaled to [0, 1]."""
        return cls(
            width=width,
            height=height,
            channels=channels,
            color_order="rgb" if channels == 3 else "grey",
            mean=(0.0,) * channels,
            std=(1.0,) * channels,
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """HWC shape of one preprocessed image."""
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessSpec:
        fields = dict(data)
        fields["mean"] = tuple(float(v) for v in fields.get("mean", (0.0,) * int(fields.get("channels", 3))))
        fields["std"] = tuple(float(v) for v in fields.get("std", (1.0,) * int(fields.get("channels", 3))))
        return cls(**fields)


def preprocess_batch(images: Sequence[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """Turn decoded frames (OpenCV layout, any size, grey or BGR uint8) into the model's float32 NHWC."""
    if len(images) == 0:
        return np.zeros((0, *spec.input_shape), dtype=np.float32)
    batch = np.empty((len(images), *spec.input_shape), dtype=np.uint8)
    for i, image in enumerate(images):
        batch[i] = prepare_pixels(image, spec)
    return normalize(batch, spec)


def prepare_pixels(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The geometric and colour half of :func:`preprocess_batch`: uint8 HxWxC in the model's size and order.

    Training caches this per image and augments the result before :func:`normalize`; without augmentation
    the two halves compose to exactly :func:`preprocess_batch`.
    """
    return _resize(_convert_colour(image, spec), spec).reshape(spec.input_shape)


def normalize(batch: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The numeric half of :func:`preprocess_batch`: uint8 NHWC (or HWC) to float32 (x*scale - mean) / std."""
    out = batch.astype(np.float32)
    scale, shift, uniform = _affine(spec)
    if uniform:
        out *= scale[0]
        if shift[0]:
            out -= shift[0]
        return out
    # Per-channel values broadcast over a last axis of 1-4 channels make numpy's inner loop that short (about
    # 8x slower than the uniform case): repeat them along each image row and work row by row instead.
    rows = out.reshape(-1, out.shape[-2] * out.shape[-1])
    rows *= np.tile(scale, out.shape[-2])
    rows -= np.tile(shift, out.shape[-2])
    return out


@functools.lru_cache(maxsize=64)
def _affine(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray, bool]:
    """``normalize``'s per-channel factors ``scale/std`` and offsets ``mean/std``, and whether every channel
    shares them; derived once per spec (deriving them took half of ``normalize``'s time on one frame)."""
    std = np.asarray(spec.std, dtype=np.float32)
    scale = np.float32(spec.scale) / std
    shift = np.asarray(spec.mean, dtype=np.float32) / std
    scale.flags.writeable = False  # shared by every caller
    shift.flags.writeable = False
    return scale, shift, bool(np.all(scale == scale[0]) and np.all(shift == shift[0]))


def _convert_colour(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        if spec.channels == 1:
            return image
        grey_to = cv2.COLOR_GRAY2RGB if spec.color_order == "rgb" else cv2.COLOR_GRAY2BGR
        return cv2.cvtColor(image, grey_to)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if spec.channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if spec.color_order == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _resize(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    height, width = image.shape[:2]
    if (width, height) == (spec.width, spec.height):
        return image
    if spec.resize == "letterbox":
        return _letterbox(image, spec)
    return cv2.resize(image, (spec.width, spec.height), interpolation=resize_interpolation(image.shape, spec))


def _letterbox(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    height, width = image.shape[:2]
    box = letterbox_for(width, height, spec.width, spec.height)
    size = (box.content_width, box.content_height)
    shrinking = size[0] < width or size[1] < height
    flag = (
        _CV2_INTERPOLATION[spec.interpolation]
        if spec.interpolation != "auto"
        else cv2.INTER_AREA
        if shrinking
        else cv2.INTER_LINEAR
    )
    content = image if size == (width, height) else cv2.resize(image, size, interpolation=flag)
    canvas = np.full((spec.height, spec.width, *image.shape[2:]), spec.pad_value, dtype=image.dtype)
    canvas[box.pad_y : box.pad_y + size[1], box.pad_x : box.pad_x + size[0]] = content
    return canvas


def resize_interpolation(shape: tuple[int, ...], spec: PreprocessSpec) -> int:
    """The OpenCV interpolation flag :func:`preprocess_batch` uses for an image of ``shape``."""
    if spec.interpolation != "auto":
        return _CV2_INTERPOLATION[spec.interpolation]
    shrinking = shape[0] > spec.height or shape[1] > spec.width
    return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a class-id mask without inventing class ids (nearest neighbour), as training targets need."""
    if mask.shape[:2] == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
