"""The shadow comparison's statistics: Wilson intervals, escape and false-reject rates, per line and class."""

from __future__ import annotations

import pytest

from vision.shadow_stats import (
    ComparedFrame,
    Rate,
    breakdown,
    compare,
    histogram,
    percentiles,
    wilson_interval,
)


def test_wilson_interval_matches_published_values() -> None:
    low, high = wilson_interval(5, 100)  # Newcombe (1998), Table I: 0.0215 - 0.1118
    assert low == pytest.approx(0.0215, abs=5e-5) and high == pytest.approx(0.1118, abs=5e-5)
    low, high = wilson_interval(0, 200)  # k = 0: upper end is z^2 / (n + z^2)
    assert low == 0.0 and high == pytest.approx(3.8415 / 203.8415, abs=1e-5)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_interval_narrows_with_more_frames() -> None:
    small, large = Rate(2, 20).interval, Rate(20, 200).interval
    assert large[1] - large[0] < small[1] - small[0]
    assert Rate(0, 0).rate is None and Rate(0, 0).to_dict()["rate"] is None


def _frame(
    prod: str, cand: str, label: str | None = None, line: str = "L1", number: int = 0
) -> ComparedFrame:
    return ComparedFrame(
        line=line,
        camera="cam",
        frame_number=number,
        candidate_verdict=cand,
        candidate_score=0.9 if cand == "DEFECT" else 0.1,
        candidate_class="scratch" if cand != "OK" else "good",
        production_verdict=prod,
        production_score=0.9 if prod == "DEFECT" else 0.1,
        production_class="scratch" if prod != "OK" else "good",
        label=label,
    )


def test_escapes_and_false_rejects_against_production_and_labels() -> None:
    frames = [
        _frame("DEFECT", "OK", label="scratch"),  # candidate escape, production caught it
        _frame("DEFECT", "DEFECT", label="scratch"),
        _frame("DEFECT", "UNCERTAIN"),  # held for review: not an escape
        _frame("OK", "DEFECT", label="good"),  # candidate false reject
        _frame("OK", "OK", label="OK"),
        _frame("OK", "OK", label="dent"),  # both escaped a labelled dent
        _frame("UNCERTAIN", "OK"),
    ]
    result = compare(frames)
    assert result.frames == 7
    assert (result.agreement.k, result.agreement.n) == (3, 7)
    assert (result.escape_vs_production.k, result.escape_vs_production.n) == (1, 3)
    assert (result.false_reject_vs_production.k, result.false_reject_vs_production.n) == (1, 3)
    assert (result.candidate_escape_vs_labels.k, result.candidate_escape_vs_labels.n) == (2, 3)
    assert (result.production_escape_vs_labels.k, result.production_escape_vs_labels.n) == (1, 3)
    assert (result.candidate_false_reject_vs_labels.k, result.candidate_false_reject_vs_labels.n) == (1, 2)
    assert (result.production_false_reject_vs_labels.k, result.production_false_reject_vs_labels.n) == (0, 2)
    assert result.confusion["DEFECT"] == {"OK": 1, "UNCERTAIN": 1, "DEFECT": 1}
    assert result.confusion["UNCERTAIN"]["OK"] == 1


def test_breakdown_groups_by_line_and_reference_class() -> None:
    frames = [
        _frame("DEFECT", "DEFECT", line="L1", number=1),
        _frame("OK", "OK", line="L1", number=2),
        _frame("OK", "OK", label="dent", line="L1", number=3),  # the label names the class
        _frame("OK", "DEFECT", line="L2", number=4),
    ]
    out = breakdown(frames)
    assert sorted(out["lines"]) == ["L1", "L2"]
    assert sorted(out["lines"]["L1"]["classes"]) == ["dent", "good", "scratch"]
    assert out["lines"]["L2"]["all"]["false_reject_vs_production"]["k"] == 1
    assert out["all"]["frames"] == 4


def test_histogram_and_percentiles() -> None:
    assert histogram([0.0, 0.049, 0.05, 1.0, None], bins=20) == [2, 1] + [0] * 17 + [1]
    assert percentiles([5.0, 1.0, 3.0, 2.0, 4.0]) == {"p50": 3.0, "p95": 5.0, "p99": 5.0}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
