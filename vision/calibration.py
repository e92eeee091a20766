"""Anomaly thresholds from good images alone, and the error rates at a threshold.

A new line usually has good images only. The threshold then comes from a false-reject budget: the share of
good parts the line accepts to send to review. With defect images, the rates at that threshold say what it
costs: how many defects escape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEFAULT_FALSE_REJECT_BUDGET = 0.01

Scores = Sequence[float] | npt.NDArray[np.floating]
Flags = Sequence[bool] | npt.NDArray[np.bool_]


def good_only_threshold(good_scores: Scores, budget: float = DEFAULT_FALSE_REJECT_BUDGET) -> float:
    """The lowest threshold at which at most ``floor(budget * n)`` of the good images score ``>=`` it.

    Flagging is ``score >= threshold``, so the threshold sits just above the (k+1)-th highest good score,
    k = ``floor(budget * n)``: exactly k good images are rejected (fewer with ties).
    """
    if not 0.0 <= budget < 1.0:
        raise ValueError(f"false-reject budget must be in [0, 1), got {budget}")
    scores = np.sort(np.asarray(good_scores, dtype=np.float64))[::-1]
    if scores.size == 0:
        raise ValueError("a good-only threshold needs at least one good score")
    allowed = int(np.floor(budget * scores.size + 1e-9))
    return float(np.nextafter(scores[allowed], np.inf))


@dataclass(frozen=True, slots=True)
class DecisionRates:
    """At one threshold: good images flagged (false rejects) and defects passed (escapes), as shares."""

    threshold: float
    false_reject_rate: float
    escape_rate: float


def decision_rates(scores: Scores, is_defect: Flags, threshold: float) -> DecisionRates:
    values = np.asarray(scores, dtype=np.float64)
    defect = np.asarray(is_defect, dtype=bool)
    flagged = values >= threshold
    good = ~defect
    return DecisionRates(
        threshold=float(threshold),
        false_reject_rate=float(flagged[good].mean()) if good.any() else 0.0,
        escape_rate=float((~flagged[defect]).mean()) if defect.any() else 0.0,
    )
