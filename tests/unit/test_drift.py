"""Drift statistics: PSI and two-sample KS on known distributions, and the frame features they compare."""

from __future__ import annotations

import numpy as np
import pytest

from vision.drift import _kolmogorov_q, compare_features, frame_statistics, ks, level, psi


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(100, 10, 5000)
    assert psi(reference, rng.normal(100, 10, 5000)) < 0.02
    assert psi(reference, rng.normal(110, 10, 5000)) > 0.25  # one standard deviation: a dimmed lamp
    assert level(0.05) == "stable" and level(0.2) == "moderate" and level(0.3) == "shifted"
    assert level(0.3, ks_p=0.2) == "stable"  # not significant: sampling noise
    with pytest.raises(ValueError):
        psi([], [1.0])


def test_ks_statistic_and_p_value() -> None:
    # Hand-computed: the CDFs of {1,2,3,4} and {3,4,5,6} are 0.5 apart at x in [2, 3).
    d, p = ks([1, 2, 3, 4], [3, 4, 5, 6])
    assert d == pytest.approx(0.5) and 0.3 < p < 0.9  # four values each: no evidence of a difference
    assert _kolmogorov_q(1.358) == pytest.approx(0.05, abs=5e-4)  # the 5 % critical value of Kolmogorov's law
    rng = np.random.default_rng(4)
    same_d, same_p = ks(rng.uniform(size=2000), rng.uniform(size=2000))
    assert same_d < 0.05 and same_p > 0.05
    shifted_d, shifted_p = ks(rng.uniform(size=2000), rng.uniform(0.1, 1.1, size=2000))
    assert shifted_d == pytest.approx(0.1, abs=0.03) and shifted_p < 1e-6


def test_frame_statistics_see_a_dimmer_and_a_blurred_frame() -> None:
    import cv2

    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    base = frame_statistics(frame)
    dim = frame_statistics((frame * 0.5).astype(np.uint8))
    blurred = frame_statistics(cv2.GaussianBlur(frame, (9, 9), 3))
    assert dim["brightness"] == pytest.approx(base["brightness"] / 2, rel=0.02)
    assert blurred["sharpness"] < base["sharpness"] / 10
    assert set(base) == {"brightness", "contrast", "sharpness", "blue", "green", "red"}
    compared = compare_features(
        {"brightness": [1.0, 2.0, 3.0] * 20}, {"brightness": [7.0, 8.0] * 20, "x": [1]}
    )
    assert list(compared) == ["brightness"] and compared["brightness"]["level"] == "shifted"
