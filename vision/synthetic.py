"""Procedural inspection images with known defects, for demos, tests, training and benchmarks.

A frame is a textured metal or plastic surface (brushed streaks, low-frequency blotches, a lighting gradient,
vignetting and sensor noise) with, on a ``defect_rate`` share of frames, one kind of defect drawn on it:
scratches, spots (pits), cracks, stains or dents. Ground truth comes with it: the image-level label, one
normalized box per defect instance and a per-pixel class mask.

Everything about frame ``index`` is drawn from random streams seeded by ``(seed, index)``, so a producer and
an evaluator that share a seed regenerate the same frame independently, in any order, on any thread. The
defects are drawn from their own stream, so :meth:`SyntheticDefectGenerator.generate_labels` yields the same
labels, boxes and mask as :meth:`~SyntheticDefectGenerator.generate` without rendering the surface.

Speed matters (a camera simulator renders 1280x1024 frames in real time), so the surface is built from
low-resolution noise upsampled by OpenCV, a precomputed sensor-noise bank read at a random offset, and defects
rendered only inside their own small region of interest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from schemas.vocabulary import Task
from vision.samples import BoxLabel, LabeledDataset, Sample

DEFAULT_DEFECT_CLASSES: tuple[str, ...] = ("scratch", "spot", "crack", "stain", "dent")
GOOD_LABEL = "good"
Surface = Literal["metal", "plastic", "mixed"]

# Margin of the sensor-noise bank: frames read it at a random offset inside this margin.
_NOISE_BANK_MARGIN = 64
# Stream ids mixed into the per-frame seed so the surface and the defects draw independently.
_SURFACE_STREAM = 0
_DEFECT_STREAM = 1

# Plastic colours as BGR gains on the grey intensity (dark grey, blue, white, green, beige, red).
_PLASTIC_TINTS = np.array(
    [
        [1.0, 1.0, 1.0],
        [1.35, 0.95, 0.65],
        [1.02, 1.02, 1.0],
        [0.75, 1.15, 0.8],
        [0.85, 1.0, 1.12],
        [0.7, 0.75, 1.35],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True, slots=True)
class SyntheticSample:
    """One generated frame and its ground truth.

    ``image`` is BGR uint8 HxWx3 (HxW when the generator has one channel). ``mask`` is uint8 HxW with 0 for
    background and ``k`` for the k-th entry of the generator's defect classes, counted from 1.
    ``image`` is None when only the labels were generated.
    """

    index: int
    image: np.ndarray | None
    label: str
    boxes: tuple[BoxLabel, ...]
    mask: np.ndarray
    surface: str


@dataclass(frozen=True, slots=True)
class _DefectPatch:
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


class SyntheticDefectGenerator:
    """Deterministic procedural frames of inspected surfaces with labelled defects."""

    def __init__(
        self,
        width: int = 1280,
        height: int = 1024,
        channels: int = 3,
        defect_rate: float = 0.3,
        seed: int = 0,
        classes: Sequence[str] = DEFAULT_DEFECT_CLASSES,
        surface: Surface = "metal",
        max_defects: int = 2,
        defect_scale: float = 1.0,
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be within [0, 1], got {defect_rate}")
        unknown = [name for name in classes if name not in _RENDERERS]
        if unknown or not classes:
            raise ValueError(f"unknown defect classes {unknown}; choose from {sorted(_RENDERERS)}")
        if surface not in ("metal", "plastic", "mixed"):
            raise ValueError(f"surface must be metal, plastic or mixed, got {surface!r}")
        if max_defects < 1:
            raise ValueError("max_defects must be at least 1")
        if not 0.25 <= defect_scale <= 4.0:
            raise ValueError(f"defect_scale must be within [0.25, 4], got {defect_scale}")
        self.width = width
        self.height = height
        self.channels = channels
        self.defect_rate = defect_rate
        self.seed = seed
        self.classes: tuple[str, ...] = tuple(classes)
        self.surface: Surface = surface
        self.max_defects = max_defects
        # Defect sizes are fractions of the frame; this multiplies them (big defects suit tiny frames).
        self.defect_scale = defect_scale
        # Precomputed once: a bank of white noise (read at a random offset per frame) and the radial map
        # that vignetting scales. Both are read-only afterwards, so one generator serves many threads.
        bank_rng = np.random.default_rng([seed, 0xB4]) if seed >= 0 else np.random.default_rng()
        self._noise_bank = bank_rng.standard_normal(
            (height + _NOISE_BANK_MARGIN, width + _NOISE_BANK_MARGIN), dtype=np.float32
        )
        # Lighting (gradient, vignetting, blotches) is smooth: it lives on a coarse grid, upsampled per frame.
        self._lighting_grid = (max(2, height // 8), max(2, width // 8))
        ys = np.linspace(-1.0, 1.0, self._lighting_grid[0], dtype=np.float32)[:, None]
        xs = np.linspace(-1.0, 1.0, self._lighting_grid[1], dtype=np.float32)[None, :]
        self._radius_sq = (xs * xs + ys * ys) / 2.0
        self._ramp_x = xs
        self._ramp_y = ys

    # -- public API -------------------------------------------------------------------------------------

    def generate(self, index: int) -> SyntheticSample:
        """Render frame ``index`` with its ground truth."""
        label, patches = self._plan_defects(index)
        surface_rng = np.random.default_rng([self.seed, index, _SURFACE_STREAM])
        surface = self._choose_surface(surface_rng)
        intensity, tint = self._render_surface(surface_rng, surface)
        for patch in patches:
            intensity[patch.y0 : patch.y1, patch.x0 : patch.x1] += patch.delta
        image = self._to_uint8(intensity, tint, patches)
        mask, boxes = self._ground_truth(patches, label)
        return SyntheticSample(index=index, image=image, label=label, boxes=boxes, mask=mask, surface=surface)

    def generate_labels(self, index: int) -> SyntheticSample:
        """The ground truth of frame ``index`` (identical to :meth:`generate`'s) without rendering pixels."""
        label, patches = self._plan_defects(index)
        surface_rng = np.random.default_rng([self.seed, index, _SURFACE_STREAM])
        mask, boxes = self._ground_truth(patches, label)
        return SyntheticSample(
            index=index,
            image=None,
            label=label,
            boxes=boxes,
            mask=mask,
            surface=self._choose_surface(surface_rng),
        )

    # -- defects ----------------------------------------------------------------------------------------

    def _plan_defects(self, index: int) -> tuple[str, list[_DefectPatch]]:
        rng = np.random.default_rng([self.seed, index, _DEFECT_STREAM])
        if rng.random() >= self.defect_rate:
            return GOOD_LABEL, []
        label = self.classes[int(rng.integers(len(self.classes)))]
        # Spots come in clusters more often than the other kinds.
        most = self.max_defects + (1 if label == "spot" else 0)
        count = int(rng.integers(1, most + 1))
        renderer = _RENDERERS[label]
        patches = [renderer(rng, self.width, self.height, self.defect_scale) for _ in range(count)]
        return label, [p for p in patches if p.footprint.any()]

    def _ground_truth(
        self, patches: list[_DefectPatch], label: str
    ) -> tuple[np.ndarray, tuple[BoxLabel, ...]]:
        mask = np.zeros((self.height, self.width), dtype=np.uint8)
        if not patches:
            return mask, ()
        class_id = self.classes.index(label) + 1
        boxes = []
        for patch in patches:
            region = mask[patch.y0 : patch.y1, patch.x0 : patch.x1]
            region[patch.footprint] = class_id
            rows = np.flatnonzero(patch.footprint.any(axis=1))
            cols = np.flatnonzero(patch.footprint.any(axis=0))
            # Boxes use pixel-edge coordinates: a defect covering columns 10..19 spans [10, 20) / width.
            boxes.append(
                BoxLabel(
                    label=label,
                    x_min=(patch.x0 + cols[0]) / self.width,
                    y_min=(patch.y0 + rows[0]) / self.height,
                    x_max=(patch.x0 + cols[-1] + 1) / self.width,
                    y_max=(patch.y0 + rows[-1] + 1) / self.height,
                )
            )
        return mask, tuple(boxes)

    # -- surface ----------------------------------------------------------------------------------------

    def _choose_surface(self, rng: np.random.Generator) -> str:
        # Always draw, so the rest of the surface stream is the same whatever the surface setting.
        pick = "metal" if rng.random() < 0.5 else "plastic"
        return pick if self.surface == "mixed" else self.surface

    def _render_surface(self, rng: np.random.Generator, surface: str) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.height, self.width
        size = (w, h)
        if surface == "metal":
            level = rng.uniform(110.0, 170.0)
            streak_strength = rng.uniform(6.0, 14.0)
            grain = rng.uniform(2.0, 5.0)
            tint = (1.0 + rng.uniform(-0.04, 0.04, 3)).astype(np.float32)
        else:
            level = rng.uniform(80.0, 160.0)
            streak_strength = rng.uniform(0.0, 2.5)
            grain = rng.uniform(1.5, 4.0)
            tint = _PLASTIC_TINTS[int(rng.integers(len(_PLASTIC_TINTS)))].copy()
        # Brushing: noise that varies fast across the brushing direction and slowly along it.
        streak_len = int(rng.integers(16, 48))
        if rng.random() < 0.5:
            streaks = rng.standard_normal((h, max(2, w // streak_len)), dtype=np.float32)
        else:
            streaks = rng.standard_normal((max(2, h // streak_len), w), dtype=np.float32)
        # Lighting is smooth, so it is computed on a coarse grid and upsampled once: the level, low-frequency
        # blotches (uneven finish), a linear gradient and vignetting.
        gh, gw = self._lighting_grid
        grid_shape = (int(rng.integers(3, 7)), int(rng.integers(3, 7)))
        blotch_grid = rng.standard_normal(grid_shape, dtype=np.float32)
        lighting = cv2.resize(blotch_grid, (gw, gh), interpolation=cv2.INTER_CUBIC) * rng.uniform(3.0, 9.0)
        gx, gy = rng.uniform(-18.0, 18.0, 2)
        lighting += level + gx * self._ramp_x + gy * self._ramp_y
        lighting *= 1.0 - rng.uniform(0.05, 0.3) * self._radius_sq
        intensity = cv2.resize(lighting, size, interpolation=cv2.INTER_LINEAR)
        intensity = cv2.scaleAdd(
            cv2.resize(streaks, size, interpolation=cv2.INTER_LINEAR), streak_strength, intensity
        )
        # Grain plus sensor noise, read from the precomputed bank at a random offset.
        oy, ox = rng.integers(0, _NOISE_BANK_MARGIN, 2)
        intensity = cv2.scaleAdd(self._noise_bank[oy : oy + h, ox : ox + w], grain, intensity)
        return intensity, tint

    def _to_uint8(self, intensity: np.ndarray, tint: np.ndarray, patches: list[_DefectPatch]) -> np.ndarray:
        np.maximum(intensity, 0.0, out=intensity)  # convertScaleAbs would mirror negative values
        if self.channels == 1:
            image = cv2.convertScaleAbs(intensity)
        else:
            # BGR order (OpenCV's), one saturating scale per channel.
            image = cv2.merge([cv2.convertScaleAbs(intensity, alpha=float(g)) for g in tint])
        for patch in patches:
            if patch.tint_alpha is None or patch.tint_bgr is None:
                continue
            region = image[patch.y0 : patch.y1, patch.x0 : patch.x1].astype(np.float32)
            if self.channels == 1:
                region += patch.tint_alpha * float(np.mean(patch.tint_bgr))
            else:
                region += patch.tint_alpha[..., None] * np.asarray(patch.tint_bgr, dtype=np.float32)
            image[patch.y0 : patch.y1, patch.x0 : patch.x1] = np.clip(region, 0, 255).astype(np.uint8)
        return image


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


def _render_scratch(rng: np.random.Generator, width: int, height: int, size_factor: float) -> _DefectPatch:
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
    return _DefectPatch(y0, y1, x0, x1, delta=coverage * amplitude, footprint=coverage > 0.25)


def _render_spot(rng: np.random.Generator, width: int, height: int, size_factor: float) -> _DefectPatch:
    scale = size_factor * min(width, height)
    radius = rng.uniform(0.012, 0.03) * scale
    cx, cy = rng.uniform(0.06, 0.94) * width, rng.uniform(0.06, 0.94) * height
    pad = radius * 1.5 + 2
    y0, y1, x0, x1 = _roi(np.array([cx]), np.array([cy]), pad, width, height)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    squash = rng.uniform(0.6, 1.0)
    angle = rng.uniform(0.0, math.pi)
    dx, dy = xx - cx, yy - cy
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / radius
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / (radius * squash)
    dist = np.sqrt(u * u + v * v)
    # A dark pit with a soft edge: full depth inside 0.7 r, fading to nothing at 1.2 r.
    depth = np.clip((1.2 - dist) / 0.5, 0.0, 1.0)
    amplitude = rng.uniform(55.0, 100.0)
    return _DefectPatch(y0, y1, x0, x1, delta=-amplitude * depth, footprint=dist <= 1.0)


def _random_walk(
    rng: np.random.Generator, start: np.ndarray, angle: float, steps: int, step_len: float
) -> np.ndarray:
    turns = np.cumsum(rng.normal(0.0, 0.35, steps))
    angles = angle + turns
    moves = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step_len
    return np.vstack([start, start + np.cumsum(moves, axis=0)])


def _render_crack(rng: np.random.Generator, width: int, height: int, size_factor: float) -> _DefectPatch:
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
    return _DefectPatch(y0, y1, x0, x1, delta=-amplitude * coverage, footprint=coverage > 0.25)


def _render_stain(rng: np.random.Generator, width: int, height: int, size_factor: float) -> _DefectPatch:
    scale = size_factor * min(width, height)
    radius = rng.uniform(0.06, 0.14) * scale
    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
    y0, y1, x0, x1 = _roi(np.array([cx]), np.array([cy]), radius * 1.6, width, height)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    squash = rng.uniform(0.5, 1.0)
    angle = rng.uniform(0.0, math.pi)
    dx, dy = xx - cx, yy - cy
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / radius
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / (radius * squash)
    # A soft blob with a ragged edge: a Gaussian modulated by low-frequency noise.
    ragged = cv2.resize(
        rng.uniform(0.65, 1.0, (5, 5)).astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC
    )
    alpha = np.exp(-(u * u + v * v)) * ragged
    # Rust, oil or water marks: a colour shift plus a little darkening, low contrast.
    palettes = ((-30.0, -8.0, 18.0), (-8.0, 12.0, 22.0), (22.0, 6.0, -14.0))
    bgr = palettes[int(rng.integers(len(palettes)))]
    darkening = rng.uniform(18.0, 35.0)
    return _DefectPatch(
        y0, y1, x0, x1, delta=-darkening * alpha, footprint=alpha > 0.3, tint_alpha=alpha, tint_bgr=bgr
    )


def _render_dent(rng: np.random.Generator, width: int, height: int, size_factor: float) -> _DefectPatch:
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
    return _DefectPatch(y0, y1, x0, x1, delta=amplitude * shading, footprint=dist <= radius * 0.9)


_RENDERERS: dict[str, Callable[[np.random.Generator, int, int, float], _DefectPatch]] = {
    "scratch": _render_scratch,
    "spot": _render_spot,
    "crack": _render_crack,
    "stain": _render_stain,
    "dent": _render_dent,
}


# -- datasets -------------------------------------------------------------------------------------------


def dataset_classes(task: Task, defect_classes: Sequence[str] = DEFAULT_DEFECT_CLASSES) -> tuple[str, ...]:
    """The class list of a synthetic dataset for ``task``.

    Classification and anomaly detection label whole images, so "good" comes first; detection and
    segmentation label defects, so the list is the defect classes (mask value k = k-th class, from 1).
    """
    if task in (Task.CLASSIFICATION, Task.ANOMALY):
        return (GOOD_LABEL, *defect_classes)
    return tuple(defect_classes)


def synthetic_dataset(
    n: int,
    task: Task | str,
    *,
    width: int = 224,
    height: int = 224,
    channels: int = 3,
    defect_rate: float = 0.5,
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_DEFECT_CLASSES,
    surface: Surface = "mixed",
    start_index: int = 0,
    max_defects: int = 2,
    defect_scale: float = 1.0,
) -> LabeledDataset:
    """``n`` synthetic samples (frames ``start_index`` .. ``start_index + n - 1``) as a lazy dataset.

    Labels, boxes and masks are computed up front (cheap: no pixels); images render on demand. Disjoint
    index ranges with the same seed give disjoint train and test sets.
    """
    task = Task(task)
    generator = SyntheticDefectGenerator(
        width=width,
        height=height,
        channels=channels,
        defect_rate=defect_rate,
        seed=seed,
        classes=classes,
        surface=surface,
        max_defects=max_defects,
        defect_scale=defect_scale,
    )
    samples = []
    for index in range(start_index, start_index + n):
        truth = generator.generate_labels(index)
        samples.append(
            Sample(
                key=f"synthetic-s{seed}-{index:07d}",
                load_image=_image_loader(generator, index),
                label=truth.label,
                boxes=truth.boxes,
                load_mask=_mask_loader(generator, index),
            )
        )
    return LabeledDataset(
        task=task,
        classes=dataset_classes(task, classes),
        samples=tuple(samples),
        description=(
            f"synthetic {surface} {width}x{height}x{channels} seed={seed} "
            f"frames={start_index}..{start_index + n - 1} defect_rate={defect_rate}"
        ),
    )


def _image_loader(generator: SyntheticDefectGenerator, index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        image = generator.generate(index).image
        assert image is not None  # generate() always renders
        return image

    return load


def _mask_loader(generator: SyntheticDefectGenerator, index: int) -> Callable[[], np.ndarray]:
    return lambda: generator.generate_labels(index).mask
