"""Perlin noise, simulated defects, good-only thresholds and pixel losses on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from vision.calibration import decision_rates, good_only_threshold
from vision.simulated_defects import (
    SimulationConfig,
    perlin_mask,
    perlin_noise,
    procedural_texture,
    simulate_anomaly,
)


def test_perlin_noise_is_zero_on_lattice_corners_and_bounded() -> None:
    noise = perlin_noise(32, 64, 4, 8, np.random.default_rng(0))
    assert noise.shape == (32, 64) and noise.dtype == np.float32
    # Gradient noise is 0 where the offset to its own corner is 0: every 8th pixel both ways here.
    np.testing.assert_allclose(noise[::8, ::8], 0.0, atol=1e-6)
    assert np.abs(noise).max() <= np.sqrt(2.0) + 1e-6
    assert noise.std() > 0.1


def test_perlin_noise_repeats_with_the_seed() -> None:
    a = perlin_noise(16, 16, 2, 2, np.random.default_rng(3))
    b = perlin_noise(16, 16, 2, 2, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_perlin_noise_rejects_empty_sizes() -> None:
    with pytest.raises(ValueError):
        perlin_noise(0, 8, 1, 1, np.random.default_rng(0))


def test_perlin_mask_thresholds_the_noise() -> None:
    config = SimulationConfig(min_scale_log2=2, max_scale_log2=2, threshold=0.5)
    mask = perlin_mask(64, 64, np.random.default_rng(0), config)
    noise = perlin_noise(64, 64, 4, 4, _after_scale_draws(0, config))
    np.testing.assert_array_equal(mask, (noise > 0.5).astype(np.uint8))


def _after_scale_draws(seed: int, config: SimulationConfig) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    rng.integers(config.min_scale_log2, config.max_scale_log2 + 1)
    rng.integers(config.min_scale_log2, config.max_scale_log2 + 1)
    return rng


def test_simulated_anomaly_changes_only_the_masked_pixels() -> None:
    rng = np.random.default_rng(5)
    image = np.full((64, 64, 3), 120, np.uint8)
    source = np.full((64, 64, 3), 10, np.uint8)
    config = SimulationConfig(probability=1.0, min_scale_log2=1, max_scale_log2=2, threshold=0.2)
    out, mask = simulate_anomaly(image, source, rng, config)
    assert mask.any() and mask.shape == (64, 64)
    np.testing.assert_array_equal(out[mask == 0], image[mask == 0])
    # Inside, a blend with at least 20 % texture (blend <= 0.8) of a texture that differs from 120.
    assert (out[mask == 1] != 120).mean() > 0.5


def test_simulation_leaves_some_images_untouched() -> None:
    image = np.full((32, 32, 1), 50, np.uint8)
    out, mask = simulate_anomaly(image, image, np.random.default_rng(0), SimulationConfig(probability=0.0))
    assert out is image and not mask.any()


def test_procedural_texture_spans_two_colours() -> None:
    texture = procedural_texture(32, 48, 3, np.random.default_rng(1))
    assert texture.shape == (32, 48, 3) and texture.dtype == np.uint8
    assert texture.std() > 1.0


def test_good_only_threshold_rejects_the_budgeted_share() -> None:
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    # Budget 0: just above the highest good score; budget 0.1 of 10: one rejected, so above the 2nd highest.
    assert good_only_threshold(scores, 0.0) == pytest.approx(1.0) and good_only_threshold(scores, 0.0) > 1.0
    t = good_only_threshold(scores, 0.1)
    assert 0.9 < t < 0.9 + 1e-9
    assert decision_rates(scores, [False] * 10, t).false_reject_rate == pytest.approx(0.1)
    with pytest.raises(ValueError):
        good_only_threshold(scores, 1.0)


def test_decision_rates_count_false_rejects_and_escapes() -> None:
    rates = decision_rates([0.1, 0.6, 0.4, 0.9], [False, False, True, True], threshold=0.5)
    assert rates.false_reject_rate == 0.5  # 0.6 of the two good images
    assert rates.escape_rate == 0.5  # 0.4 of the two defects
