"""Training data: images cached at the model's input size, the augmented ``tf.data`` pipeline, validation
arrays, and the targets each task learns.

Every image goes once through the first half of the serving preprocessing (colour order and resize) and is
cached as uint8; each step augments the cached pixels with their boxes and masks (seeded per step, so runs
repeat exactly), crops them when the run trains on crops (:mod:`vision.crops`), applies the second half of
the preprocessing and builds the task's target.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from schemas.vocabulary import Task
from vision.balanced_sampling import BalancedSampler
from vision.box_mixing import Patch, copy_paste, cut_patch, mosaic, mosaic_centre, mosaic_regions
from vision.crops import Crop, crop_at, origin_containing, random_origin, tile_origins
from vision.datasets.augment import augment
from vision.nets.blocks import STANDARDIZATION_EPSILON
from vision.nets.detection_training import point_targets
from vision.nets.detector import OUTPUT_STRIDE
from vision.nets.targets import class_index, detection_targets
from vision.outputs import GOOD_LABEL
from vision.preprocess import PreprocessSpec, normalize, prepare_pixels, resize_mask
from vision.samples import BoxLabel, LabeledDataset
from vision.simulated_defects import simulate_anomaly
from vision.train_config import TrainConfig


@dataclass(frozen=True)
class Prepared:
    """A dataset cached at the model's input size."""

    pixels: np.ndarray  # uint8 (N, H, W, C)
    labels: tuple[str, ...]
    boxes: tuple[tuple[BoxLabel, ...], ...]
    masks: np.ndarray | None  # uint8 (N, H, W) for segmentation (and anomaly ground truth), else None
    # Crops only: each crop's whole-frame (mean, std) per channel, float64 (N, 2, C): see frame_statistics.
    frame_stats: np.ndarray | None = None


def frame_statistics(x: np.ndarray) -> np.ndarray:
    """(mean, std) per channel of one normalized HxWxC frame, float64, as the served network's
    :class:`~vision.nets.blocks.ImageStandardization` computes them over the whole frame."""
    values = x.astype(np.float64).reshape(-1, x.shape[-1])
    mean = values.mean(axis=0)
    std = np.sqrt(((values - mean) ** 2).mean(axis=0) + STANDARDIZATION_EPSILON)
    return np.stack([mean, std])


def prestandardized(x: np.ndarray, stats: np.ndarray | None) -> np.ndarray:
    """A normalized crop (HxWxC or NxHxWxC with per-item stats) standardized with its frame's statistics;
    unchanged without stats (whole frames: the network standardizes them itself)."""
    if stats is None:
        return x
    mean, std = (stats[..., 0, :], stats[..., 1, :]) if stats.ndim == 3 else (stats[0], stats[1])
    if x.ndim == 4:
        mean, std = mean[:, None, None, :], std[:, None, None, :]
    return ((x.astype(np.float64) - mean) / std).astype(np.float32)


def prepare(dataset: LabeledDataset, spec: PreprocessSpec, task: Task) -> Prepared:
    needs_masks = task in (Task.SEGMENTATION, Task.ANOMALY)

    def load(index: int) -> tuple[np.ndarray, np.ndarray | None]:
        sample = dataset.samples[index]
        pixels = prepare_pixels(sample.load_image(), spec)
        mask = None
        if needs_masks:
            raw = sample.load_mask() if sample.load_mask is not None else None
            mask = (
                np.zeros((spec.height, spec.width), np.uint8)
                if raw is None
                else resize_mask(raw, spec.width, spec.height)
            )
        return pixels, mask

    # OpenCV releases the GIL while decoding and resizing: two threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        loaded = list(pool.map(load, range(len(dataset))))
    pixels = np.empty((len(dataset), *spec.input_shape), dtype=np.uint8)
    for i, (image, _) in enumerate(loaded):
        pixels[i] = image
    masks = np.stack([m for _, m in loaded if m is not None]) if needs_masks and loaded else None
    return Prepared(
        pixels=pixels,
        labels=tuple(s.label for s in dataset.samples),
        boxes=tuple(s.boxes for s in dataset.samples),
        masks=masks,
    )


def target(
    task: Task,
    label: str,
    boxes: Sequence[BoxLabel],
    mask: np.ndarray | None,
    x: np.ndarray,
    classes: tuple[str, ...],
    spec: PreprocessSpec,
    head: str = "centernet",
) -> np.ndarray:
    if task is Task.CLASSIFICATION:
        return np.asarray(class_index(label, classes), dtype=np.float32)
    if task is Task.DETECTION and head == "fcos":
        return point_targets(boxes, classes, spec)
    if task is Task.DETECTION:
        return detection_targets(boxes, classes, spec.width // OUTPUT_STRIDE, spec.height // OUTPUT_STRIDE)
    if task is Task.SEGMENTATION:
        assert mask is not None
        return mask[..., None].astype(np.float32)
    return x  # the autoencoder reconstructs its input


def training_pipeline(
    data: Prepared, classes: tuple[str, ...], spec: PreprocessSpec, config: TrainConfig
) -> tf.data.Dataset:
    """Endless shuffled, augmented batches. ``spec`` is what the trained network sees: with
    ``config.crop`` each example is a random crop of that size out of the cached (larger) input."""
    task = config.task
    count = len(data.labels)
    cached_size = (data.pixels.shape[2], data.pixels.shape[1])
    crop_size = (spec.width, spec.height)
    first = crop_at(data.pixels[0], data.boxes[0], mask_of(data, 0), (0, 0), crop_size)
    example_x = normalize(first.image, spec)
    example_y = target(
        task, data.labels[0], first.boxes, first.mask, example_x, classes, spec, config.detector_head
    )

    simulated = task is Task.ANOMALY and config.anomaly_method == "simulated"
    if simulated:
        example_y = np.zeros((*spec.input_shape[:2], 1), np.float32)
    mixer = _Mixer.build(data, classes, config) if task is Task.DETECTION else None

    def piece(rng: np.random.Generator, size: tuple[int, int], index: int) -> tuple[Crop, np.ndarray | None]:
        """One image (``index``, or the balanced sampler's draw) cut to ``size`` (around the drawn instance
        where there is one), with the frame statistics to standardize it with. Only a window of the cut plus
        a margin for the rotation is pasted into and augmented (a quarter of the work of the whole frame for
        a crop, a sixteenth for a mosaic piece); the cut is the window's middle."""
        assert mixer is not None
        i, focus = (index, None) if mixer.sampler is None else mixer.sampler.draw(rng)
        pixels, boxes, mask = data.pixels[i], data.boxes[i], mask_of(data, i)
        window = mixer.window(size, cached_size)
        pad = ((window[0] - size[0]) // 2, (window[1] - size[1]) // 2)
        # The cut is drawn inside the frame less the pads, so the window around it stays in the frame.
        inner = (cached_size[0] - 2 * pad[0], cached_size[1] - 2 * pad[1])
        if focus is None:
            corner = random_origin(inner, size, rng)
        else:
            box = boxes[focus]
            x0, x1 = (
                (box.x_min * cached_size[0] - pad[0]) / inner[0],
                (box.x_max * cached_size[0] - pad[0]) / inner[0],
            )
            y0, y1 = (
                (box.y_min * cached_size[1] - pad[1]) / inner[1],
                (box.y_max * cached_size[1] - pad[1]) / inner[1],
            )
            clipped = BoxLabel(box.label, max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1))
            corner = origin_containing(clipped, inner, size, rng)
        origin = corner  # the window's corner in the frame = the cut's corner in the inner frame
        cut = crop_at(pixels, boxes, mask, origin, window)
        pixels, boxes, mask = cut.image, cut.boxes, cut.mask
        if mixer.pastes:
            pixels, boxes = copy_paste(pixels, boxes, mixer.patches(rng, window), rng)
        if config.augment:
            augmented = augment(pixels, boxes, mask, config.augment_config, rng)
            pixels, boxes, mask = augmented.image, augmented.boxes, augmented.mask
        pixels = pixels.reshape(*window[::-1], *data.pixels.shape[3:])
        middle = ((window[0] - size[0]) // 2, (window[1] - size[1]) // 2)
        # Standardized with the whole frame's statistics as the served network will (blocks.py); from the
        # cached frame, before its brightness and contrast were drawn (those stay a shift the network sees).
        stats = None if crop_size == cached_size else mixer.frame_stats[i]
        return crop_at(pixels, boxes, mask, middle, size), stats

    def make_example(step: np.int64, index: np.int64) -> tuple[np.ndarray, np.ndarray]:
        i = int(index)
        # Seeded by (seed, step): the same run gives the same augmentations, whatever the threading.
        rng = np.random.default_rng([config.seed, int(step)])
        if mixer is not None and mixer.mosaic_share > 0 and rng.random() < mixer.mosaic_share:
            centre = mosaic_centre(crop_size, rng)
            parts = []
            for k, (_, _, w, h) in enumerate(mosaic_regions(crop_size, centre)):
                cut, stats = piece(rng, (w, h), i if k == 0 else int(rng.integers(count)))
                # Each piece standardized with its own frame's statistics (none on whole-input training).
                parts.append(Crop(prestandardized(normalize(cut.image, spec), stats), cut.boxes, cut.mask))
            tiled_example = mosaic(parts, centre)
            x = tiled_example.image.astype(np.float32)
            y = target(
                task, data.labels[i], tiled_example.boxes, None, x, classes, spec, config.detector_head
            )
            return x, y
        if mixer is not None:
            cut, stats = piece(rng, crop_size, i)
            x = normalize(cut.image, spec)
            y = target(task, data.labels[i], cut.boxes, None, x, classes, spec, config.detector_head)
            return prestandardized(x, stats), y
        pixels, boxes, mask = data.pixels[i], data.boxes[i], mask_of(data, i)
        if config.augment:
            augmented = augment(pixels, boxes, mask, config.augment_config, rng)
            pixels, boxes, mask = augmented.image, augmented.boxes, augmented.mask
        pixels = pixels.reshape(data.pixels.shape[1:])
        stats = None
        if crop_size != cached_size:
            # The crop is standardized as the served network will standardize its frame (blocks.py).
            stats = frame_statistics(normalize(pixels, spec))
            cropped = crop_at(pixels, boxes, mask, random_origin(cached_size, crop_size, rng), crop_size)
            pixels, boxes, mask = cropped.image, cropped.boxes, cropped.mask
        if simulated:
            # Another good image lends its texture; the target is the painted region.
            source = data.pixels[int(rng.integers(count))]
            if crop_size != cached_size:
                source = crop_at(
                    source, (), None, random_origin(cached_size, crop_size, rng), crop_size
                ).image
            pixels, painted = simulate_anomaly(pixels, source, rng)
            return prestandardized(normalize(pixels, spec), stats), painted[..., None].astype(np.float32)
        x = normalize(pixels, spec)
        # The autoencoder's target stays the plain input: the served one reconstructs what it is given.
        y = target(task, data.labels[i], boxes, mask, x, classes, spec, config.detector_head)
        return prestandardized(x, stats), y

    def to_tensors(step: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(make_example, [step, index], [tf.float32, tf.float32], stateful=False)
        x.set_shape(example_x.shape)
        y.set_shape(example_y.shape)
        return x, y

    options = tf.data.Options()
    options.deterministic = True
    return (
        tf.data.Dataset.range(count)
        .shuffle(count, seed=config.seed, reshuffle_each_iteration=True)
        .repeat()
        .enumerate()
        .map(to_tensors, num_parallel_calls=2)
        .batch(config.batch_size, drop_remainder=True)
        .prefetch(2)
        .with_options(options)
    )


@dataclass(frozen=True)
class _Mixer:
    """Detection's mosaic, copy-paste and class-balanced sampling for one run (None when all are off)."""

    data: Prepared
    sampler: BalancedSampler | None
    donors: BalancedSampler  # draws the instances that are pasted (balanced as the sampler is, or natural)
    pastes: int  # instances pasted per example's area
    mosaic_share: float
    frame_stats: np.ndarray  # (N, 2, C) every cached frame's (mean, std), see frame_statistics
    margin: float  # of a window around each cut, as a share of the cut's sides (the rotation's reach)
    example_area: int  # pixels of one training example

    @classmethod
    def build(cls, data: Prepared, classes: tuple[str, ...], config: TrainConfig) -> _Mixer | None:
        share, per_example, strength = config.mosaic_share, config.paste_count, config.balance_strength
        if not (share > 0 or per_example > 0 or strength > 0):
            return None
        sampler = BalancedSampler.build(data.boxes, classes, strength) if strength > 0 else None
        donors = BalancedSampler.build(data.boxes, classes, strength)
        if not len(donors.image_of):
            per_example = 0
        spec = config.preprocess_spec()
        stats = np.stack([frame_statistics(normalize(frame, spec)) for frame in data.pixels])
        # A cut rotated by up to R degrees about its middle reaches about sin(R) of the other side beyond it.
        margin = (
            float(np.sin(np.radians(config.augment_config.max_rotation_degrees))) if config.augment else 0.0
        )
        example = config.training_spec()
        return cls(data, sampler, donors, per_example, share, stats, margin, example.width * example.height)

    def window(self, size: tuple[int, int], frame: tuple[int, int]) -> tuple[int, int]:
        """The window that is cut, pasted into and augmented around a cut of ``size``: ``margin`` of the
        longer side, halved, on every side (what a rotated cut needs), within the frame."""
        pad = int(np.ceil(self.margin * max(size) / 2))
        return tuple(min(whole, side + 2 * pad) for side, whole in zip(size, frame, strict=True))  # type: ignore[return-value]

    def patches(self, rng: np.random.Generator, window: tuple[int, int]) -> list[Patch]:
        # Pasted into the window before augmentation (flipped, rotated, lit and blurred like the rest of
        # it): as many per window as the run asks per example, scaled by area.
        count = round(self.pastes * window[0] * window[1] / max(1, self.example_area))
        picks = rng.choice(len(self.donors.image_of), size=count, p=self.donors.probabilities)
        return [
            cut_patch(self.data.pixels[self.donors.image_of[k]], self.data.boxes[self.donors.image_of[k]][j])
            for k, j in ((int(k), int(self.donors.box_of[k])) for k in picks)
        ]


def mask_of(data: Prepared, index: int) -> np.ndarray | None:
    return None if data.masks is None else data.masks[index]


def validation_arrays(
    data: Prepared,
    classes: tuple[str, ...],
    spec: PreprocessSpec,
    task: Task,
    config: TrainConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    if task is Task.ANOMALY and config is not None and config.anomaly_method == "simulated":
        return simulated_validation(data, spec, config.seed)
    xs = normalize(data.pixels, spec)
    if task is Task.ANOMALY:
        # Validation loss of an autoencoder only means something on the kind of image it learns.
        good = np.array([label == GOOD_LABEL for label in data.labels])
        keep = good if good.any() else np.ones(len(good), bool)
        stats = None if data.frame_stats is None else data.frame_stats[keep]
        return prestandardized(xs[keep], stats), xs[keep]
    ys = np.stack(
        [
            target(
                task,
                data.labels[i],
                data.boxes[i],
                mask_of(data, i),
                xs[i],
                classes,
                spec,
                config.detector_head if config is not None else "centernet",
            )
            for i in range(len(data.labels))
        ]
    )
    return prestandardized(xs, data.frame_stats), ys


def simulated_validation(data: Prepared, spec: PreprocessSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation loss for the simulated-defect model: real defects with their masks where there are any,
    and every good image once more with a fixed simulated defect (good images alone would reward a model
    that flags nothing)."""
    rng = np.random.default_rng([seed, 7919])
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    stats: list[np.ndarray] = []
    for i, label in enumerate(data.labels):
        pixels = data.pixels[i]
        mask = mask_of(data, i)
        images.append(pixels)
        masks.append(mask if mask is not None else np.zeros(pixels.shape[:2], np.uint8))
        if data.frame_stats is not None:
            stats.append(data.frame_stats[i])
        if label == GOOD_LABEL:
            source = data.pixels[int(rng.integers(len(data.labels)))]
            painted, painted_mask = simulate_anomaly(pixels, source, rng)
            images.append(painted)
            masks.append(painted_mask)
            if data.frame_stats is not None:
                stats.append(data.frame_stats[i])
    xs = prestandardized(normalize(np.stack(images), spec), np.stack(stats) if stats else None)
    ys = (np.stack(masks) > 0).astype(np.float32)[..., None]
    return xs, ys


def tiled(data: Prepared, crop_size: tuple[int, int], spec: PreprocessSpec) -> Prepared:
    """Every image cut into the fewest crops of ``crop_size`` that cover it (see
    :func:`vision.crops.tile_origins`), with their boxes and masks: the validation loss of a network
    trained on crops. Tiles keep their image's label, and carry their image's statistics (normalized by
    ``spec``) to be standardized with."""
    height, width = data.pixels.shape[1:3]
    origins = tile_origins((width, height), crop_size)
    frames = [frame_statistics(normalize(data.pixels[i], spec)) for i in range(len(data.labels))]
    crops = [
        crop_at(data.pixels[i], data.boxes[i], mask_of(data, i), origin, crop_size)
        for i in range(len(data.labels))
        for origin in origins
    ]
    return Prepared(
        pixels=np.stack([c.image for c in crops]),
        labels=tuple(label for label in data.labels for _ in origins),
        boxes=tuple(c.boxes for c in crops),
        masks=None if data.masks is None else np.stack([c.mask for c in crops if c.mask is not None]),
        frame_stats=np.stack([frames[i] for i in range(len(data.labels)) for _ in origins]),
    )
