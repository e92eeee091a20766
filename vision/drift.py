"""Drift of a camera's frames and of the model's scores against a reference (the model's training images):
frame statistics, the population stability index and the two-sample Kolmogorov-Smirnov test. Pure NumPy
(plus OpenCV for the statistics of one image).

- *brightness*: mean grey level; *contrast*: its standard deviation; *sharpness*: variance of the Laplacian
  (a camera out of focus, or moved so the part is out of the focal plane, drops it); *colour*: mean of each
  channel (a lamp's colour temperature); *score*: the model's defect score.
- PSI = sum((c - r) * ln(c / r)) over 10 bins at the reference's deciles (so each holds a tenth of the
  reference); empty bins count as 1e-4. The usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted;
  here a level above stable also needs the KS test to find the difference significant (p < 0.01).
- KS: the largest gap between the two empirical distribution functions, and its asymptotic p-value
  (Kolmogorov's series with Stephens' small-sample correction, as in Numerical Recipes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PSI_BINS = 10
PSI_EPS = 1e-4
PSI_MODERATE = 0.1
PSI_SHIFTED = 0.25
KS_ALPHA = 0.01
FEATURES = ("brightness", "contrast", "sharpness", "blue", "green", "red")


def frame_statistics(image: np.ndarray) -> dict[str, float]:
    """The drift features of one decoded frame (OpenCV layout: grey, or BGR uint8)."""
    import cv2

    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    stats = {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
    }
    channels = [grey, grey, grey] if image.ndim == 2 else [image[..., i] for i in range(3)]
    for name, channel in zip(("blue", "green", "red"), channels, strict=True):
        stats[name] = float(channel.mean())
    return stats


def psi(reference: Sequence[float], current: Sequence[float], bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against ``reference``."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("PSI needs values on both sides")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    ref_share = np.maximum(ref_share, PSI_EPS)
    cur_share = np.maximum(cur_share, PSI_EPS)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """(D, p-value) of the two-sample Kolmogorov-Smirnov test."""
    a = np.sort(np.asarray(reference, dtype=np.float64))
    b = np.sort(np.asarray(current, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError("KS needs values on both sides")
    values = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, values, side="right") / a.size
    cdf_b = np.searchsorted(b, values, side="right") / b.size
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    n = a.size * b.size / (a.size + b.size)
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    return d, _kolmogorov_q(lam)


def _kolmogorov_q(lam: float) -> float:
    if lam < 1e-3:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * 2.0 * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-10:
            break
        sign = -sign
    return float(min(1.0, max(0.0, total)))


def level(value: float, ks_p: float = 0.0) -> str:
    """stable / moderate / shifted by PSI; a PSI the KS test does not find significant (p >= ``KS_ALPHA``)
    is sampling noise - with a few dozen frames PSI alone reads 0.1-0.3 between identical distributions."""
    if value < PSI_MODERATE or ks_p >= KS_ALPHA:
        return "stable"
    return "moderate" if value < PSI_SHIFTED else "shifted"


def compare_features(
    reference: Mapping[str, Sequence[float]], current: Mapping[str, Sequence[float]]
) -> dict[str, dict[str, Any]]:
    """PSI, KS and a level per feature present on both sides with values."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(reference) & set(current)):
        if not len(reference[name]) or not len(current[name]):
            continue
        index = psi(reference[name], current[name])
        d, p = ks(reference[name], current[name])
        out[name] = {
            "psi": round(index, 4),
            "ks_d": round(d, 4),
            "ks_p": float(f"{p:.3g}"),
            "level": level(index, p),
            "reference_mean": round(float(np.mean(reference[name])), 4),
            "current_mean": round(float(np.mean(current[name])), 4),
            "n": len(current[name]),
        }
    return out
