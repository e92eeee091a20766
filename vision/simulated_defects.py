"""Simulated anomalies for training on good images only (DRAEM, Zavrtanik et al., ICCV 2021).

A line rarely has defect images when it starts, so the anomaly model learns from good images that get
defects painted in: a region from thresholded Perlin noise (blobs of every size, from pits to stains, with
irregular borders) filled with a foreign texture, blended with the original by a random factor (faint
defects as well as obvious ones). The texture comes from another good image, rolled, flipped and
re-coloured, or from a procedural pattern made here (noise, stripes), so nothing is downloaded. A network
trained to outline these regions learns "where does this surface stop looking like itself", which transfers
to real defects it never saw.

Pure NumPy, seeded by the caller's generator: the same seed paints the same defects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SQRT2 = float(np.sqrt(2.0))


def _fade(t: np.ndarray) -> np.ndarray:
    """Perlin's quintic interpolation curve: zero first and second derivative at 0 and 1 (no grid seams)."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(height: int, width: int, cells_y: int, cells_x: int, rng: np.random.Generator) -> np.ndarray:
    """Gradient noise over ``cells_y x cells_x`` lattice cells, float32 in about [-1, 1], shape (H, W).

    Each lattice corner gets a random unit gradient; a pixel's value blends the dot products of the four
    surrounding gradients with its offsets to them, by the fade curve.
    """
    if height < 1 or width < 1 or cells_y < 1 or cells_x < 1:
        raise ValueError("perlin_noise needs positive sizes and cell counts")
    angles = rng.uniform(0.0, 2.0 * np.pi, (cells_y + 1, cells_x + 1))
    gradients = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (cy+1, cx+1, 2): (gy, gx)
    ys = np.arange(height) * (cells_y / height)
    xs = np.arange(width) * (cells_x / width)
    yi, xi = ys.astype(np.int64), xs.astype(np.int64)
    yf, xf = (ys - yi)[:, None], (xs - xi)[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        g = gradients[yi[:, None] + dy, xi[None, :] + dx]
        return g[..., 0] * (yf - dy) + g[..., 1] * (xf - dx)

    u, v = _fade(xf), _fade(yf)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return (_SQRT2 * (top * (1 - v) + bottom * v)).astype(np.float32)


@dataclass(frozen=True)
class SimulationConfig:
    """How anomalies are painted. ``max_scale_log2``: the finest noise has 2**max cells per side (small
    pits); ``threshold``: noise above it is defect (0.5 as in DRAEM: a few blobs per image);
    ``blend``: range of the original image's weight inside the defect (0 = pure texture)."""

    probability: float = 0.5
    min_scale_log2: int = 0
    max_scale_log2: int = 5
    threshold: float = 0.5
    blend: tuple[float, float] = (0.0, 0.8)
    texture_from_images: float = 0.5


def perlin_mask(
    height: int, width: int, rng: np.random.Generator, config: SimulationConfig = SimulationConfig()
) -> np.ndarray:
    """A random defect region: uint8 (H, W), 1 inside. Cell counts per axis are drawn independently
    (elongated blobs as well as round ones). May be empty: DRAEM keeps those as good examples."""
    cells_y = 2 ** int(rng.integers(config.min_scale_log2, config.max_scale_log2 + 1))
    cells_x = 2 ** int(rng.integers(config.min_scale_log2, config.max_scale_log2 + 1))
    noise = perlin_noise(height, width, cells_y, cells_x, rng)
    return (noise > config.threshold).astype(np.uint8)


def procedural_texture(height: int, width: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """A foreign surface made here: Perlin noise or stripes between two random colours, uint8 (H, W, C)."""
    if rng.random() < 0.5:
        cells = 2 ** int(rng.integers(1, 6))
        pattern = perlin_noise(height, width, cells, cells, rng) * 0.5 + 0.5
    else:
        angle = rng.uniform(0.0, np.pi)
        period = rng.uniform(2.0, max(3.0, min(height, width) / 4))
        yy, xx = np.mgrid[0:height, 0:width]
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
        pattern = 0.5 + 0.5 * np.sin(phase)
    low, high = rng.uniform(0, 255, channels), rng.uniform(0, 255, channels)
    texture = low + np.clip(pattern, 0.0, 1.0)[..., None] * (high - low)
    return texture.astype(np.uint8)


def image_texture(source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another good image as the filling, moved and re-coloured so it does not line up with the target."""
    texture = np.roll(
        source, (int(rng.integers(source.shape[0])), int(rng.integers(source.shape[1]))), (0, 1)
    )
    if rng.random() < 0.5:
        texture = texture[:, ::-1]
    if rng.random() < 0.5:
        texture = texture[::-1]
    out = texture.astype(np.float32)
    choice = rng.integers(3)
    if choice == 0:
        out = 255.0 - out  # inverted
    elif choice == 1:
        out = (out - out.mean()) * rng.uniform(1.5, 3.0) + out.mean() + rng.uniform(-60, 60)  # contrast
    else:
        gamma = rng.uniform(0.4, 2.5)
        out = 255.0 * (out / 255.0) ** gamma
    if out.shape[-1] > 1 and rng.random() < 0.5:
        out = out[..., rng.permutation(out.shape[-1])]  # another hue
    return np.clip(out, 0, 255).astype(np.uint8)


def simulate_anomaly(
    image: np.ndarray,
    texture_source: np.ndarray,
    rng: np.random.Generator,
    config: SimulationConfig = SimulationConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (uint8 H, W, C) with a simulated defect, and its mask (uint8 H, W, 1 inside).

    With probability ``1 - config.probability`` the image is returned unchanged with an empty mask, so the
    network also sees untouched good surfaces.
    """
    height, width, channels = image.shape
    empty = np.zeros((height, width), np.uint8)
    if rng.random() >= config.probability:
        return image, empty
    mask = perlin_mask(height, width, rng, config)
    if not mask.any():
        return image, empty
    if rng.random() < config.texture_from_images:
        texture = image_texture(texture_source, rng)
    else:
        texture = procedural_texture(height, width, channels, rng)
    beta = rng.uniform(*config.blend)
    m = mask[..., None].astype(np.float32)
    blended = image * (1.0 - m) + m * ((1.0 - beta) * texture + beta * image)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8), mask
