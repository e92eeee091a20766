"""The defects of synthetic frames: one renderer per kind, each drawing one instance in its own region.

A renderer takes the defect stream's random generator, the frame size and a size factor and returns a
:class:`DefectPatch`: the additive intensity change, the footprint (the source of the mask and the box)
and, for stains, a colour shift. Rendering only inside the patch's small region of interest keeps a
1280x1024 camera simulator real-time. :mod:`vision.synthetic` composes the patches onto a surface.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class DefectPatch:
    """A rendered defect instance, confined to the region ``[y0:y1, x0:x1]`` of the frame."""

    y0: int
    y1: int
    x0: int
    x1: int
    # Additive change of the grey intensity.
    delta: np.ndarray
    # Pixels that belong to the defect (bool), the source of the mask and the box.
    footprint: np.ndarray
    # Optional colour shift: alpha (float32 patch) times a BGR offset, for stains.
    tint_alpha: np.ndarray | None = None
    tint_bgr: tuple[float, float, float] | None = None


# -- defect renderers: each draws one instance inside its own region of interest -------------------------


def _roi(
    points_x: np.ndarray, points_y: np.ndarray, pad: float, width: int, height: int
) -> tuple[int, int, int, int]:
    x0 = max(0, math.floor(points_x.min() - pad))
    x1 = min(width, math.ceil(points_x.max() + pad) + 1)
    y0 = max(0, math.floor(points_y.min() - pad))
    y1 = min(height, math.ceil(points_y.max() + pad) + 1)
    return y0, max(y1, y0 + 1), x0, max(x1, x0 + 1)


def _draw_polylines(
    lines: list[np.ndarray], thickness: int, width: int, height: int
) -> tuple[int, int, int, int, np.ndarray]:
    """Anti-aliased polylines drawn into a patch covering them: the ROI and the coverage in [0, 1]."""
    all_points = np.concatenate(lines)
    y0, y1, x0, x1 = _roi(all_points[:, 0], all_points[:, 1], thickness + 2, width, height)
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    shift = 4  # sub-pixel precision: coordinates in 1/16 px
    scaled = [np.round((line - [x0, y0]) * (1 << shift)).astype(np.int32) for line in lines]
    cv2.polylines(canvas, scaled, False, 255, thickness=thickness, lineType=cv2.LINE_AA, shift=shift)
    return y0, y1, x0, x1, canvas.astype(np.float32) / 255.0


def _render_scratch(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    scale = size_factor * min(width, height)
    length = rng.uniform(0.2, 0.55) * scale
    angle = rng.uniform(0.0, math.pi)
    start = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    end = start + direction * length
    control = (start + end) / 2 + normal * rng.uniform(-0.25, 0.25) * length
    t = np.linspace(0.0, 1.0, 24)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    thickness = max(1, round(rng.uniform(0.002, 0.006) * scale))
    y0, y1, x0, x1, coverage = _draw_polylines([curve], thickness, width, height)
    # Scratches catch the light (bright) or cut into a coating (dark).
    amplitude = rng.uniform(45.0, 90.0) * (1.0 if rng.random() < 0.6 else -1.0)
    return DefectPatch(y0, y1, x0, x1, delta=coverage * amplitude, footprint=coverage > 0.25)


def _ellipse_coordinates(
    rng: np.random.Generator,
    roi: tuple[int, int, int, int],
    centre: tuple[float, float],
    radius: float,
    min_squash: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The region's pixels in the frame of a randomly squashed and turned ellipse: 1 on its outline.

    Draws the squash, then the angle, from ``rng`` (the order fixes every later draw of the frame)."""
    y0, y1, x0, x1 = roi
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    squash = rng.uniform(min_squash, 1.0)
    angle = rng.uniform(0.0, math.pi)
    dx, dy = xx - centre[0], yy - centre[1]
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / radius
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / (radius * squash)
    return u, v


def _render_spot(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    scale = size_factor * min(width, height)
    radius = rng.uniform(0.012, 0.03) * scale
    cx, cy = rng.uniform(0.06, 0.94) * width, rng.uniform(0.06, 0.94) * height
    pad = radius * 1.5 + 2
    y0, y1, x0, x1 = _roi(np.array([cx]), np.array([cy]), pad, width, height)
    u, v = _ellipse_coordinates(rng, (y0, y1, x0, x1), (cx, cy), radius, min_squash=0.6)
    dist = np.sqrt(u * u + v * v)
    # A dark pit with a soft edge: full depth inside 0.7 r, fading to nothing at 1.2 r.
    depth = np.clip((1.2 - dist) / 0.5, 0.0, 1.0)
    amplitude = rng.uniform(55.0, 100.0)
    return DefectPatch(y0, y1, x0, x1, delta=-amplitude * depth, footprint=dist <= 1.0)


def _random_walk(
    rng: np.random.Generator, start: np.ndarray, angle: float, steps: int, step_len: float
) -> np.ndarray:
    turns = np.cumsum(rng.normal(0.0, 0.35, steps))
    angles = angle + turns
    moves = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step_len
    return np.vstack([start, start + np.cumsum(moves, axis=0)])


def _render_crack(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    scale = size_factor * min(width, height)
    step_len = 0.012 * scale
    start = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height])
    angle = rng.uniform(0.0, 2 * math.pi)
    trunk = _random_walk(rng, start, angle, int(rng.integers(14, 30)), step_len)
    lines = [trunk]
    # Branches leave the trunk at random points, at a sharp angle, and are shorter.
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.integers(1, len(trunk) - 1))
        branch_angle = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        lines.append(_random_walk(rng, trunk[at], branch_angle, int(rng.integers(4, 12)), step_len * 0.8))
    clipped = [np.clip(line, [0.0, 0.0], [width - 1.0, height - 1.0]) for line in lines]
    thickness = max(1, round(rng.uniform(0.002, 0.004) * scale))
    y0, y1, x0, x1, coverage = _draw_polylines(clipped, thickness, width, height)
    amplitude = rng.uniform(60.0, 100.0)
    return DefectPatch(y0, y1, x0, x1, delta=-amplitude * coverage, footprint=coverage > 0.25)


@dataclass(frozen=True)
class _BlobShape:
    """A soft elliptical blob's draw ranges: radius (share of the image's shorter side), centre (share of each
    side), ROI reach (radii), least squash, the ragged-edge noise grid and its floor."""

    radius: tuple[float, float]
    centre: tuple[float, float]
    reach: float
    min_squash: float
    grid: int
    floor: float


def _ragged_blob(
    rng: np.random.Generator, width: int, height: int, size_factor: float, shape: _BlobShape
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """A soft blob with a ragged edge (a Gaussian modulated by low-frequency noise): its ROI and alpha.
    The draws keep the order the stain always had, so its frames stay what they were."""
    radius = rng.uniform(*shape.radius) * size_factor * min(width, height)
    cx, cy = rng.uniform(*shape.centre) * width, rng.uniform(*shape.centre) * height
    y0, y1, x0, x1 = _roi(np.array([cx]), np.array([cy]), radius * shape.reach, width, height)
    u, v = _ellipse_coordinates(rng, (y0, y1, x0, x1), (cx, cy), radius, min_squash=shape.min_squash)
    noise = rng.uniform(shape.floor, 1.0, (shape.grid, shape.grid)).astype(np.float32)
    ragged = cv2.resize(noise, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
    return (y0, y1, x0, x1), np.exp(-(u * u + v * v)) * ragged


def _render_stain(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    shape = _BlobShape(
        radius=(0.06, 0.14), centre=(0.15, 0.85), reach=1.6, min_squash=0.5, grid=5, floor=0.65
    )
    (y0, y1, x0, x1), alpha = _ragged_blob(rng, width, height, size_factor, shape)
    # Rust, oil or water marks: a colour shift plus a little darkening, low contrast.
    palettes = ((-30.0, -8.0, 18.0), (-8.0, 12.0, 22.0), (22.0, 6.0, -14.0))
    bgr = palettes[int(rng.integers(len(palettes)))]
    darkening = rng.uniform(18.0, 35.0)
    return DefectPatch(
        y0, y1, x0, x1, delta=-darkening * alpha, footprint=alpha > 0.3, tint_alpha=alpha, tint_bgr=bgr
    )


def _render_dent(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    scale = size_factor * min(width, height)
    radius = rng.uniform(0.04, 0.09) * scale
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    y0, y1, x0, x1 = _roi(np.array([cx]), np.array([cy]), radius + 2, width, height)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    dist = np.sqrt(dx * dx + dy * dy)
    light = rng.uniform(0.0, 2 * math.pi)
    # A bowl lit from one side: shading follows the slope of depth cos^2(pi d / 2r) along the light.
    along = (dx * math.cos(light) + dy * math.sin(light)) / np.maximum(dist, 1e-3)
    shading = np.where(dist < radius, np.sin(np.pi * dist / radius) * along, 0.0).astype(np.float32)
    amplitude = rng.uniform(35.0, 60.0)
    return DefectPatch(y0, y1, x0, x1, delta=amplitude * shading, footprint=dist <= radius * 0.9)


# -- the hard cases of real lines: long hairlines, faint diffuse haze, pits of a few pixels ---------------
# Not among the default classes (the shipped models and their tests keep their data); chosen with
# ``classes=("hairline", "haze", "pit", ...)``.


def _render_hairline(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    """A long, nearly straight, one-pixel scratch of low contrast across much of the part."""
    scale = size_factor * min(width, height)
    length = rng.uniform(0.5, 0.95) * scale
    angle = rng.uniform(0.0, math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    centre = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    start, end = centre - direction * length / 2, centre + direction * length / 2
    bow = np.array([-direction[1], direction[0]]) * rng.uniform(-0.04, 0.04) * length
    t = np.linspace(0.0, 1.0, 32)[:, None]
    curve = (1 - t) * start + t * end + 4 * t * (1 - t) * bow
    curve = np.clip(curve, [0.0, 0.0], [width - 1.0, height - 1.0])
    y0, y1, x0, x1, coverage = _draw_polylines([curve], 1, width, height)
    amplitude = rng.uniform(18.0, 40.0) * (1.0 if rng.random() < 0.5 else -1.0)
    return DefectPatch(y0, y1, x0, x1, delta=coverage * amplitude, footprint=coverage > 0.25)


def _render_haze(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    """A large diffuse cloud a few grey levels off the surface (crazing, a film, a dull patch)."""
    shape = _BlobShape(radius=(0.1, 0.22), centre=(0.2, 0.8), reach=1.8, min_squash=0.4, grid=6, floor=0.5)
    (y0, y1, x0, x1), alpha = _ragged_blob(rng, width, height, size_factor, shape)
    amplitude = rng.uniform(6.0, 14.0) * (1.0 if rng.random() < 0.5 else -1.0)
    return DefectPatch(y0, y1, x0, x1, delta=amplitude * alpha, footprint=alpha > 0.4)


def _render_pit(rng: np.random.Generator, width: int, height: int, size_factor: float) -> DefectPatch:
    """A pit of a few pixels (0.2-0.6 % of the frame's short side, at least a 1.2-pixel radius)."""
    scale = size_factor * min(width, height)
    radius = max(1.2, rng.uniform(0.002, 0.006) * scale)
    cx, cy = rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height
    y0, y1, x0, x1 = _roi(np.array([cx]), np.array([cy]), radius * 1.5 + 1, width, height)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / radius
    depth = np.clip((1.3 - dist) / 0.6, 0.0, 1.0)
    amplitude = rng.uniform(35.0, 80.0)
    return DefectPatch(y0, y1, x0, x1, delta=-amplitude * depth, footprint=dist <= 1.0)


RENDERERS: dict[str, Callable[[np.random.Generator, int, int, float], DefectPatch]] = {
    "scratch": _render_scratch,
    "spot": _render_spot,
    "crack": _render_crack,
    "stain": _render_stain,
    "dent": _render_dent,
    "hairline": _render_hairline,
    "haze": _render_haze,
    "pit": _render_pit,
}

# Kinds that come in clusters: a frame with one often has one more.
CLUSTERED: frozenset[str] = frozenset({"spot", "pit"})
