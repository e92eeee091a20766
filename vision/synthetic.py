"""Procedural inspection images with known defects, for demos, tests, training and benchmarks.

A frame is a brushed-metal or plastic surface, or one of the textured industrial surfaces of
:mod:`vision.synthetic_surfaces` (rolled steel, tile, fabric, PCB), under low-frequency blotches, a lighting
gradient, vignetting and sensor noise, with, on a ``defect_rate`` share of frames, one kind of defect drawn
on it: scratches, spots, cracks, stains or dents by default; hairline scratches, faint haze and tiny pits on
request (:mod:`vision.synthetic_defects`). Ground truth comes with it: the image-level label, one normalized
box per defect instance and a per-pixel class mask.

Everything about frame ``index`` is drawn from random streams seeded by ``(seed, index)``, so a producer and
an evaluator that share a seed regenerate the same frame independently, in any order, on any thread. The
defects are drawn from their own stream, so :meth:`SyntheticDefectGenerator.generate_labels` yields the same
labels, boxes and mask as :meth:`~SyntheticDefectGenerator.generate` without rendering the surface.

Speed matters (a camera simulator renders 1280x1024 frames in real time), so the surface is built from
low-resolution noise upsampled by OpenCV, a precomputed sensor-noise bank read at a random offset, and defects
rendered only inside their own small region of interest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from schemas.vocabulary import Task
from vision.samples import BoxLabel, LabeledDataset, Sample
from vision.synthetic_defects import CLUSTERED, RENDERERS, DefectPatch
from vision.synthetic_kinds import DEFAULT_DEFECT_CLASSES, SURFACES, TEXTURED_SURFACES
from vision.synthetic_surfaces import render_texture

GOOD_LABEL = "good"
# One of vision.synthetic_kinds.SURFACES.
Surface = Literal["metal", "plastic", "steel", "tile", "fabric", "pcb", "mixed", "all"]
_ALL_SURFACES: tuple[str, ...] = ("metal", "plastic", *TEXTURED_SURFACES)

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
        unknown = [name for name in classes if name not in RENDERERS]
        if unknown or not classes:
            raise ValueError(f"unknown defect classes {unknown}; choose from {sorted(RENDERERS)}")
        if surface not in SURFACES:
            raise ValueError(f"surface must be one of {', '.join(SURFACES)}, got {surface!r}")
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

    def _plan_defects(self, index: int) -> tuple[str, list[DefectPatch]]:
        rng = np.random.default_rng([self.seed, index, _DEFECT_STREAM])
        if rng.random() >= self.defect_rate:
            return GOOD_LABEL, []
        label = self.classes[int(rng.integers(len(self.classes)))]
        # Spots and pits come in clusters more often than the other kinds.
        most = self.max_defects + (1 if label in CLUSTERED else 0)
        count = int(rng.integers(1, most + 1))
        renderer = RENDERERS[label]
        patches = [renderer(rng, self.width, self.height, self.defect_scale) for _ in range(count)]
        return label, [p for p in patches if p.footprint.any()]

    def _ground_truth(
        self, patches: list[DefectPatch], label: str
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
        # Always draw exactly once, so the rest of the surface stream is the same whatever the setting.
        draw = rng.random()
        if self.surface == "all":
            return _ALL_SURFACES[min(int(draw * len(_ALL_SURFACES)), len(_ALL_SURFACES) - 1)]
        pick = "metal" if draw < 0.5 else "plastic"
        return pick if self.surface == "mixed" else self.surface

    def _render_surface(self, rng: np.random.Generator, surface: str) -> tuple[np.ndarray, np.ndarray]:
        if surface in TEXTURED_SURFACES:
            return self._render_texture(rng, surface)
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
        intensity = self._lighting(rng, level)
        intensity = cv2.scaleAdd(
            cv2.resize(streaks, size, interpolation=cv2.INTER_LINEAR), streak_strength, intensity
        )
        return self._add_grain(rng, intensity, grain), tint

    def _render_texture(self, rng: np.random.Generator, surface: str) -> tuple[np.ndarray, np.ndarray]:
        texture = render_texture(surface, rng, self.height, self.width)
        intensity = self._lighting(rng, texture.level) + texture.pattern
        return self._add_grain(rng, intensity, texture.grain), texture.tint

    def _lighting(self, rng: np.random.Generator, level: float) -> np.ndarray:
        """The lit base intensity at full size: the level, low-frequency blotches (uneven finish), a linear
        gradient and vignetting. Smooth, so it is computed on a coarse grid and upsampled once."""
        gh, gw = self._lighting_grid
        grid_shape = (int(rng.integers(3, 7)), int(rng.integers(3, 7)))
        blotch_grid = rng.standard_normal(grid_shape, dtype=np.float32)
        lighting = cv2.resize(blotch_grid, (gw, gh), interpolation=cv2.INTER_CUBIC) * rng.uniform(3.0, 9.0)
        gx, gy = rng.uniform(-18.0, 18.0, 2)
        lighting += level + gx * self._ramp_x + gy * self._ramp_y
        lighting *= 1.0 - rng.uniform(0.05, 0.3) * self._radius_sq
        return cv2.resize(lighting, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def _add_grain(self, rng: np.random.Generator, intensity: np.ndarray, grain: float) -> np.ndarray:
        """Grain plus sensor noise, read from the precomputed bank at a random offset."""
        h, w = self.height, self.width
        oy, ox = rng.integers(0, _NOISE_BANK_MARGIN, 2)
        return cv2.scaleAdd(self._noise_bank[oy : oy + h, ox : ox + w], grain, intensity)

    def _to_uint8(self, intensity: np.ndarray, tint: np.ndarray, patches: list[DefectPatch]) -> np.ndarray:
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
