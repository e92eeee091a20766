"""Textured industrial surfaces for synthetic frames: rolled steel, ceramic tile, woven fabric and PCB.

Brushed metal and plain plastic (:mod:`vision.synthetic`) are nearly featureless; real lines inspect surfaces
whose own structure looks like a defect to a naive model: the rolling marks and mill scale of steel strip, the
grout grid of tiles, the weave of fabric, the copper traces of a circuit board. A model trained only on
featureless frames learns "any structure is a defect" and rejects every real textured part, so the generator
offers these as well.

A texture is an additive intensity pattern around a base level, plus the frame's colour gains and grain. The
generator adds its own lighting (blotches, gradient, vignetting) and sensor noise on top, as for metal.
Every pattern is built from whole-frame NumPy/OpenCV operations (no per-pixel Python) so that a 1280x1024
camera simulator stays real-time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vision.synthetic_kinds import TEXTURED_SURFACES

# BGR gains on the grey intensity.
_TILE_TINTS = ((1.0, 1.0, 1.0), (0.86, 0.97, 1.08), (0.62, 0.78, 1.2), (0.95, 0.95, 0.93))
_FABRIC_TINTS = ((1.3, 0.85, 0.6), (1.0, 1.0, 1.0), (0.75, 0.95, 1.05), (0.9, 0.8, 1.15))
_PCB_SOLDER_MASK = (0.72, 1.25, 0.55)


@dataclass(frozen=True, slots=True)
class Texture:
    """A surface before lighting and noise: ``level + pattern`` is its grey intensity (float32 HxW)."""

    level: float
    pattern: np.ndarray
    tint: np.ndarray
    grain: float


def render_texture(kind: str, rng: np.random.Generator, height: int, width: int) -> Texture:
    """The texture ``kind`` (one of :data:`TEXTURED_SURFACES`) for one frame, drawn from ``rng``."""
    try:
        renderer = _RENDERERS[kind]
    except KeyError:
        raise ValueError(f"unknown texture {kind!r}; choose from {', '.join(TEXTURED_SURFACES)}") from None
    return renderer(rng, height, width)


def _smooth_noise(rng: np.random.Generator, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Unit-variance noise on a ``grid`` (rows, cols), upsampled to ``size`` (width, height): smooth blobs."""
    coarse = rng.standard_normal((max(2, grid[0]), max(2, grid[1])), dtype=np.float32)
    return cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC)


def _jittered_gains(rng: np.random.Generator, gains: tuple[float, float, float], spread: float) -> np.ndarray:
    """BGR gains varied by up to ``spread`` per channel: no two parts of a batch are the same colour."""
    return (np.asarray(gains, dtype=np.float32) * (1.0 + rng.uniform(-spread, spread, 3))).astype(np.float32)


def _steel(rng: np.random.Generator, height: int, width: int) -> Texture:
    """Hot-rolled strip: long streaks along the rolling direction, faint roll marks, patches of mill scale."""
    size = (width, height)
    along_x = rng.random() < 0.5
    # Streaks: noise that changes fast across the rolling direction and hardly along it.
    streak_len = int(rng.integers(48, 160))
    shape = (height, max(2, width // streak_len)) if along_x else (max(2, height // streak_len), width)
    streaks = cv2.resize(rng.standard_normal(shape, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR)
    pattern = streaks * rng.uniform(4.0, 9.0)
    # Roll marks: the work roll's circumference repeats a faint band along the strip.
    period = rng.uniform(60.0, 220.0)
    position = np.arange(width if along_x else height, dtype=np.float32)
    bands = np.sin(2 * math.pi * position / period + rng.uniform(0, 2 * math.pi)) * rng.uniform(1.0, 3.0)
    pattern += bands[None, :] if along_x else bands[:, None]
    # Mill scale: dark irregular patches with soft edges, a share of the surface.
    blobs = _smooth_noise(rng, (int(rng.integers(6, 14)), int(rng.integers(6, 14))), size)
    cover = rng.uniform(0.4, 1.2)  # threshold in deviations: higher, fewer patches
    scale = np.clip((blobs - cover) * 2.0, 0.0, 1.0)
    pattern -= scale * rng.uniform(8.0, 18.0)
    tint = np.array([1.04, 1.0, 0.96], dtype=np.float32) * (1.0 + rng.uniform(-0.03, 0.03, 3)).astype(
        np.float32
    )
    return Texture(float(rng.uniform(75.0, 125.0)), pattern, tint, float(rng.uniform(2.5, 5.0)))


def _tile(rng: np.random.Generator, height: int, width: int) -> Texture:
    """Ceramic tiles: a glaze level per tile, grout lines between them, sparse speckle in the glaze."""
    pitch = rng.uniform(0.2, 0.45) * min(height, width)
    grout = max(2, round(pitch * rng.uniform(0.02, 0.05)))
    offset_x, offset_y = rng.uniform(0.0, pitch, 2)
    cols = np.floor((np.arange(width, dtype=np.float32) + offset_x) / pitch).astype(np.int32)
    rows = np.floor((np.arange(height, dtype=np.float32) + offset_y) / pitch).astype(np.int32)
    glaze = rng.uniform(-6.0, 6.0, (int(rows.max()) + 1, int(cols.max()) + 1)).astype(np.float32)
    pattern = glaze[rows[:, None], cols[None, :]]
    in_grout_x = ((np.arange(width) + offset_x) % pitch) < grout
    in_grout_y = ((np.arange(height) + offset_y) % pitch) < grout
    grout_mask = in_grout_y[:, None] | in_grout_x[None, :]
    pattern = np.where(grout_mask, rng.uniform(-45.0, -25.0), pattern).astype(np.float32)
    # Speckle: 0.5 % of the pixels 9 grey levels up or down (drawn by position: cheap at any frame size).
    count = max(1, height * width // 200)
    flat = pattern.reshape(-1)
    flat[rng.integers(0, flat.size, count)] += rng.choice(np.array([-9.0, 9.0], dtype=np.float32), count)
    tint = np.array(_TILE_TINTS[int(rng.integers(len(_TILE_TINTS)))], dtype=np.float32)
    return Texture(float(rng.uniform(150.0, 200.0)), pattern, tint, float(rng.uniform(1.0, 2.5)))


def _fabric(rng: np.random.Generator, height: int, width: int) -> Texture:
    """Plain weave: warp and weft threads crossing over and under, slightly turned, with uneven threads."""
    period = rng.uniform(4.0, 9.0)  # pixels per thread pair
    angle = rng.uniform(-0.12, 0.12)
    # sin(k u) * sin(k v) for the turned coordinates u = x cos a + y sin a, v = y cos a - x sin a, each
    # factor expanded into outer products of 1-D sines: no trigonometry per pixel.
    k = 2 * math.pi / period
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    along_u = np.cos(k * y * sin_a) * np.sin(k * x * cos_a) + np.sin(k * y * sin_a) * np.cos(k * x * cos_a)
    along_v = np.sin(k * y * cos_a) * np.cos(k * x * sin_a) - np.cos(k * y * cos_a) * np.sin(k * x * sin_a)
    weave = along_u * along_v
    # Threads are not all alike: a thickness that drifts slowly from thread to thread.
    thread = _smooth_noise(rng, (int(rng.integers(20, 60)), 2), (width, height))
    pattern = weave * rng.uniform(10.0, 22.0) * (1.0 + 0.25 * thread)
    tint = np.array(_FABRIC_TINTS[int(rng.integers(len(_FABRIC_TINTS)))], dtype=np.float32)
    return Texture(
        float(rng.uniform(90.0, 150.0)), pattern.astype(np.float32), tint, float(rng.uniform(1.5, 3.0))
    )


def _pcb(rng: np.random.Generator, height: int, width: int) -> Texture:
    """A circuit board under green solder mask: copper traces in right angles, pads, drilled vias."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    scale = min(height, width)
    for _ in range(int(rng.integers(8, 20))):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        thickness = max(1, round(rng.uniform(0.006, 0.02) * scale))
        points = [(x, y)]
        for _segment in range(int(rng.integers(2, 5))):
            length = int(rng.uniform(0.1, 0.5) * scale)
            if rng.random() < 0.5:
                x = int(np.clip(x + rng.choice([-1, 1]) * length, 0, width - 1))
            else:
                y = int(np.clip(y + rng.choice([-1, 1]) * length, 0, height - 1))
            points.append((x, y))
        cv2.polylines(canvas, [np.array(points, dtype=np.int32)], False, 255, thickness=thickness)
        pad = max(2, thickness * 2)
        for px, py in (points[0], points[-1]):
            cv2.rectangle(canvas, (px - pad, py - pad), (px + pad, py + pad), 255, thickness=-1)
    copper = canvas.astype(np.float32) / 255.0
    pattern = copper * rng.uniform(35.0, 55.0)
    for _ in range(int(rng.integers(3, 12))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = max(1, round(rng.uniform(0.004, 0.01) * scale))
        cv2.circle(pattern, centre, radius, -40.0, thickness=-1)
    # The glass-fibre weave shows faintly through the mask.
    weave = np.sin(np.arange(height, dtype=np.float32) * 0.9)[:, None] * np.sin(np.arange(width) * 0.9)
    pattern += weave.astype(np.float32) * rng.uniform(0.5, 1.5)
    tint = np.array(_PCB_SOLDER_MASK, dtype=np.float32) * (1.0 + rng.uniform(-0.05, 0.05, 3)).astype(
        np.float32
    )
    return Texture(float(rng.uniform(70.0, 100.0)), pattern, tint, float(rng.uniform(1.5, 3.0)))


_RENDERERS: dict[str, Callable[[np.random.Generator, int, int], Texture]] = {
    "steel": _steel,
    "tile": _tile,
    "fabric": _fabric,
    "pcb": _pcb,
}
