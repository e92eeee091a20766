"""The shared preprocessing function: colour handling, resizing and normalization."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.preprocess import PreprocessSpec, normalize, preprocess_batch, resize_mask


def _bgr(height: int, width: int, bgr: tuple[int, int, int]) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = bgr
    return image


def test_bgr_input_becomes_rgb_scaled_to_unit_range() -> None:
    spec = PreprocessSpec.for_input(8, 6)
    batch = preprocess_batch([_bgr(6, 8, (10, 20, 255))], spec)
    assert batch.shape == (1, 6, 8, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, 0, 0], [255 / 255, 20 / 255, 10 / 255], rtol=1e-6)


def test_bgr_order_is_kept_when_the_model_wants_bgr() -> None:
    spec = PreprocessSpec(width=4, height=4, color_order="bgr")
    batch = preprocess_batch([_bgr(4, 4, (10, 20, 30))], spec)
    np.testing.assert_allclose(batch[0, 0, 0] * 255, [10, 20, 30], rtol=1e-5)


def test_mean_and_std_are_applied_per_channel() -> None:
    spec = PreprocessSpec(
        width=2, height=2, color_order="rgb", scale=1.0, mean=(100.0, 50.0, 0.0), std=(2.0, 5.0, 10.0)
    )
    batch = preprocess_batch([_bgr(2, 2, (30, 60, 110))], spec)
    # RGB = (110, 60, 30) -> ((110-100)/2, (60-50)/5, (30-0)/10)
    np.testing.assert_allclose(batch[0, 1, 1], [5.0, 2.0, 3.0], rtol=1e-6)


@pytest.mark.parametrize(
    ("mean", "std", "shape"),
    [
        ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (2, 5, 7, 3)),  # uniform: scalar path
        ((0.4, 0.4, 0.4), (0.5, 0.5, 0.5), (5, 7, 3)),  # uniform with a shift, one image
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (2, 5, 7, 3)),  # per channel: row path
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (5, 7, 3)),
    ],
)
def test_normalize_matches_the_formula_on_batches_and_single_images(
    mean: tuple[float, ...], std: tuple[float, ...], shape: tuple[int, ...]
) -> None:
    spec = PreprocessSpec(width=7, height=5, color_order="rgb", scale=1 / 255, mean=mean, std=std)
    pixels = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    expected = (pixels / 255.0 - np.asarray(mean)) / np.asarray(std)
    out = normalize(pixels, spec)
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_grey_and_colour_convert_both_ways() -> None:
    grey_spec = PreprocessSpec.for_input(4, 4, channels=1)
    colour_spec = PreprocessSpec.for_input(4, 4, channels=3)
    colour = _bgr(4, 4, (0, 0, 255))
    grey = np.full((4, 4), 77, dtype=np.uint8)
    to_grey = preprocess_batch([colour, grey, grey[..., None]], grey_spec)
    assert to_grey.shape == (3, 4, 4, 1)
    expected_red_luma = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)[0, 0] / 255
    np.testing.assert_allclose(to_grey[0, 0, 0, 0], expected_red_luma, rtol=1e-6)
    np.testing.assert_allclose(to_grey[1:, ..., 0], 77 / 255, rtol=1e-6)
    to_colour = preprocess_batch([grey], colour_spec)
    np.testing.assert_allclose(to_colour[0], 77 / 255, rtol=1e-6)


def test_alpha_channel_is_dropped() -> None:
    bgra = np.dstack([_bgr(4, 4, (1, 2, 3)), np.full((4, 4), 9, dtype=np.uint8)])
    batch = preprocess_batch([bgra], PreprocessSpec(width=4, height=4, color_order="bgr", scale=1.0))
    np.testing.assert_array_equal(batch[0, 0, 0], [1, 2, 3])


def test_frames_of_any_size_are_resized_to_the_model_input() -> None:
    spec = PreprocessSpec.for_input(32, 24)
    batch = preprocess_batch([_bgr(100, 60, (0, 0, 0)), _bgr(10, 12, (255, 255, 255))], spec)
    assert batch.shape == (2, 24, 32, 3)
    np.testing.assert_allclose(batch[1], 1.0, rtol=1e-6)


def test_shrinking_uses_area_averaging_so_thin_lines_survive() -> None:
    # A 1 px bright line every 8 px: area averaging keeps 1/8 of its energy in every output pixel; point
    # sampling (nearest) would see either nothing or the full line.
    image = np.zeros((64, 64), dtype=np.uint8)
    image[:, 3::8] = 255
    auto = preprocess_batch([image], PreprocessSpec.for_input(8, 8, channels=1))
    np.testing.assert_allclose(auto[0, ..., 0], 1 / 8, atol=1e-3)
    expected = cv2.resize(image, (8, 8), interpolation=cv2.INTER_LINEAR) / 255
    linear_spec = PreprocessSpec(
        width=8, height=8, channels=1, color_order="grey", mean=(0.0,), std=(1.0,), interpolation="linear"
    )
    np.testing.assert_allclose(preprocess_batch([image], linear_spec)[0, ..., 0], expected, atol=1e-6)


def test_empty_batch_has_the_model_shape() -> None:
    assert preprocess_batch([], PreprocessSpec.for_input(5, 7)).shape == (0, 7, 5, 3)


def test_spec_round_trips_through_a_dict() -> None:
    spec = PreprocessSpec(width=64, height=48, color_order="bgr", mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0))
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 2},
        {"channels": 1, "color_order": "rgb"},
        {"mean": (0.0,)},
        {"std": (1.0, 0.0, 1.0)},
        {"width": 0},
    ],
)
def test_inconsistent_specs_are_refused(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"width": 4, "height": 4}
    with pytest.raises(ValueError):
        PreprocessSpec(**{**base, **kwargs})  # type: ignore[arg-type]


def test_non_uint8_images_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess_batch([np.zeros((4, 4, 3), dtype=np.float32)], PreprocessSpec.for_input(4, 4))


def test_resize_mask_never_invents_class_ids() -> None:
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[10:20, 10:20] = 1
    mask[20:30, 20:30] = 3
    small = resize_mask(mask, 13, 11)
    assert small.shape == (11, 13)
    assert set(np.unique(small)) <= {0, 1, 3}
