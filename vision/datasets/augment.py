"""Augmentations for industrial images, applied consistently to the image, its boxes and its mask.

Chosen for parts on a line: a part may arrive mirrored or slightly rotated, lighting drifts (brightness,
contrast), sensors add noise and focus wanders (blur). Colour shifts and large crops are left out on
purpose: colour often *is* the defect, and a crop can cut the defect away while the label still says it is
there. Geometry moves boxes and masks with the pixels; photometric changes touch the image only. Pure
NumPy/OpenCV, so it runs inside ``tf.data`` through ``tf.numpy_function`` or on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.samples import BoxLabel


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Probabilities and ranges; a zero turns that augmentation off."""

    horizontal_flip: float = 0.5
    vertical_flip: float = 0.5
    max_rotation_degrees: float = 10.0
    brightness: float = 0.1  # additive shift, as a fraction of the 0..255 range, drawn from +-brightness
    contrast: float = 0.15  # gain drawn from 1 +- contrast, around the image mean
    max_noise_std: float = 4.0  # Gaussian sensor noise in grey levels, sigma drawn from 0..max
    blur_probability: float = 0.2
    max_blur_sigma: float = 1.2


@dataclass(frozen=True, slots=True)
class Augmented:
    """An augmented image with its boxes and mask (``None`` when none was given)."""

    image: np.ndarray
    boxes: tuple[BoxLabel, ...] = ()
    mask: np.ndarray | None = None


def flip_boxes(boxes: tuple[BoxLabel, ...], horizontal: bool, vertical: bool) -> tuple[BoxLabel, ...]:
    """Mirror normalized boxes the way the image is mirrored."""
    flipped = []
    for b in boxes:
        x_min, x_max = (1.0 - b.x_max, 1.0 - b.x_min) if horizontal else (b.x_min, b.x_max)
        y_min, y_max = (1.0 - b.y_max, 1.0 - b.y_min) if vertical else (b.y_min, b.y_max)
        flipped.append(BoxLabel(b.label, x_min, y_min, x_max, y_max))
    return tuple(flipped)


def rotation_matrix(width: int, height: int, degrees: float) -> np.ndarray:
    """The 2x3 affine matrix of a rotation by ``degrees`` (counter-clockwise) about the image centre."""
    return cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), degrees, 1.0)


def rotate_boxes(
    boxes: tuple[BoxLabel, ...], matrix: np.ndarray, width: int, height: int
) -> tuple[BoxLabel, ...]:
    """Rotate boxes with ``matrix``: each becomes the axis-aligned envelope of its rotated corners, clipped
    to the image; a box rotated entirely out of the image is dropped."""
    rotated = []
    for b in boxes:
        corners = np.array(
            [
                [b.x_min * width, b.y_min * height, 1.0],
                [b.x_max * width, b.y_min * height, 1.0],
                [b.x_min * width, b.y_max * height, 1.0],
                [b.x_max * width, b.y_max * height, 1.0],
            ]
        )
        moved = corners @ matrix.T
        x_min, y_min = np.clip(moved.min(axis=0), 0, [width, height])
        x_max, y_max = np.clip(moved.max(axis=0), 0, [width, height])
        if x_max > x_min and y_max > y_min:
            rotated.append(BoxLabel(b.label, x_min / width, y_min / height, x_max / width, y_max / height))
    return tuple(rotated)


def adjust_brightness_contrast(image: np.ndarray, shift: float, gain: float) -> np.ndarray:
    """``(pixel - mean) * gain + mean + shift``, clipped to uint8."""
    pixels = image.astype(np.float32)
    mean = float(pixels.mean())
    return np.clip((pixels - mean) * gain + mean + shift, 0, 255).astype(np.uint8)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise with standard deviation ``sigma`` grey levels."""
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@dataclass
class Augmenter:
    """Draws random augmentations from ``config``; seeded, so a training run can be repeated exactly."""

    config: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(
        self, image: np.ndarray, boxes: tuple[BoxLabel, ...] = (), mask: np.ndarray | None = None
    ) -> Augmented:
        return augment(image, boxes, mask, self.config, self.rng)


def augment(
    image: np.ndarray,
    boxes: tuple[BoxLabel, ...],
    mask: np.ndarray | None,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> Augmented:
    """One random augmentation of an image (uint8 grey or BGR) with its boxes and mask."""
    horizontal = rng.random() < config.horizontal_flip
    vertical = rng.random() < config.vertical_flip
    if horizontal or vertical:
        axes = tuple(axis for axis, flip in ((1, horizontal), (0, vertical)) if flip)
        image = np.flip(image, axis=axes)
        mask = np.flip(mask, axis=axes) if mask is not None else None
        boxes = flip_boxes(boxes, horizontal, vertical)

    if config.max_rotation_degrees > 0:
        degrees = float(rng.uniform(-config.max_rotation_degrees, config.max_rotation_degrees))
        height, width = image.shape[:2]
        matrix = rotation_matrix(width, height, degrees)
        # Corners uncovered by the rotation are filled with the image's median level and labelled
        # background: reflecting the border instead would copy defects next to the edge without a label.
        fill = tuple(
            float(v) for v in np.median(image.reshape(-1, image.shape[2] if image.ndim == 3 else 1), axis=0)
        )
        image = cv2.warpAffine(
            np.ascontiguousarray(image),
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=fill,
        )
        if mask is not None:
            mask = cv2.warpAffine(
                np.ascontiguousarray(mask),
                matrix,
                (width, height),
                flags=cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
        boxes = rotate_boxes(boxes, matrix, width, height)

    if config.brightness > 0 or config.contrast > 0:
        shift = float(rng.uniform(-config.brightness, config.brightness)) * 255.0
        gain = 1.0 + float(rng.uniform(-config.contrast, config.contrast))
        image = adjust_brightness_contrast(image, shift, gain)
    if config.max_noise_std > 0:
        image = add_noise(image, float(rng.uniform(0.0, config.max_noise_std)), rng)
    if config.blur_probability > 0 and rng.random() < config.blur_probability:
        sigma = float(rng.uniform(0.3, max(0.3, config.max_blur_sigma)))
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    mask = np.ascontiguousarray(mask) if mask is not None else None
    return Augmented(image=np.ascontiguousarray(image), boxes=boxes, mask=mask)
