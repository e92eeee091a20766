"""Statistics of a shadow comparison: a candidate model's verdicts next to production's on the same frames,
and both next to human labels where a reviewer labelled the frame. Pure Python, no I/O.

Definitions (the promotion gate relies on them, so they are spelled out):

- *escape*: a defective part passed as ``OK`` (UNCERTAIN goes to review, so it is not an escape). Against
  production the reference "defective" is production's DEFECT verdict; against labels it is a label other
  than good/ok.
- *false reject*: a good part given ``DEFECT``. Against production the reference "good" is production's OK
  verdict; against labels it is a good/ok label.
- every rate is ``k / n`` with a Wilson 95 % score interval: unlike the normal approximation it stays inside
  [0, 1] and is honest at k = 0 (the case that matters: "no escapes in 200 frames" still means up to 1.9 %).
- a frame's *class* is its human label when labelled, else production's defect class when production did
  not pass it, else ``good``: per-class figures answer "on frames of this kind, what did the candidate do".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Z_95 = 1.959963984540054
GOOD_LABELS = frozenset({"good", "ok"})
VERDICTS = ("OK", "UNCERTAIN", "DEFECT")
GOOD_CLASS = "good"
SCORE_BINS = 20  # score histograms over [0, 1] in 0.05 steps


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k / n``; (0, 1) when ``n`` is 0 (nothing is known)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Exact at the edges: rounding must not put 0/n above 0 or n/n below 1.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True, slots=True)
class Rate:
    """``k`` of ``n`` with its Wilson 95 % interval; ``rate`` is None when ``n`` is 0."""

    k: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        rate = self.rate
        return {
            "k": self.k,
            "n": self.n,
            "rate": None if rate is None else round(rate, 6),
            "low": round(low, 6),
            "high": round(high, 6),
        }


@dataclass(frozen=True, slots=True)
class ComparedFrame:
    """One frame seen by both models (and maybe a reviewer)."""

    line: str
    camera: str
    frame_number: int
    candidate_verdict: str
    candidate_score: float | None
    candidate_class: str
    production_verdict: str
    production_score: float | None
    production_class: str
    label: str | None = None  # the latest human label, if any

    @property
    def labelled_defective(self) -> bool | None:
        if self.label is None:
            return None
        return self.label.lower() not in GOOD_LABELS

    @property
    def reference_class(self) -> str:
        if self.label is not None:
            return GOOD_CLASS if self.label.lower() in GOOD_LABELS else self.label
        return GOOD_CLASS if self.production_verdict == "OK" else self.production_class

    @property
    def disagrees(self) -> bool:
        return self.candidate_verdict != self.production_verdict


def _rate(
    frames: Sequence[ComparedFrame],
    reference: Callable[[ComparedFrame], bool],
    hit: Callable[[ComparedFrame], bool],
) -> Rate:
    selected = [f for f in frames if reference(f)]
    return Rate(sum(1 for f in selected if hit(f)), len(selected))


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every figure of one group of frames (a line, a class, or all)."""

    frames: int
    agreement: Rate
    confusion: dict[str, dict[str, int]]  # production verdict -> candidate verdict -> count
    escape_vs_production: Rate
    false_reject_vs_production: Rate
    candidate_escape_vs_labels: Rate
    production_escape_vs_labels: Rate
    candidate_false_reject_vs_labels: Rate
    production_false_reject_vs_labels: Rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "agreement": self.agreement.to_dict(),
            "confusion": self.confusion,
            "escape_vs_production": self.escape_vs_production.to_dict(),
            "false_reject_vs_production": self.false_reject_vs_production.to_dict(),
            "labels": {
                "candidate_escape": self.candidate_escape_vs_labels.to_dict(),
                "production_escape": self.production_escape_vs_labels.to_dict(),
                "candidate_false_reject": self.candidate_false_reject_vs_labels.to_dict(),
                "production_false_reject": self.production_false_reject_vs_labels.to_dict(),
            },
        }


def compare(frames: Sequence[ComparedFrame]) -> Comparison:
    """The figures of one group of frames."""
    confusion = {p: {c: 0 for c in VERDICTS} for p in VERDICTS}
    for frame in frames:
        row = confusion.setdefault(frame.production_verdict, {c: 0 for c in VERDICTS})
        row[frame.candidate_verdict] = row.get(frame.candidate_verdict, 0) + 1
    defective = lambda f: f.labelled_defective is True  # noqa: E731 - four one-line predicates read best
    good = lambda f: f.labelled_defective is False  # noqa: E731
    return Comparison(
        frames=len(frames),
        agreement=Rate(sum(1 for f in frames if not f.disagrees), len(frames)),
        confusion=confusion,
        escape_vs_production=_rate(
            frames, lambda f: f.production_verdict == "DEFECT", lambda f: f.candidate_verdict == "OK"
        ),
        false_reject_vs_production=_rate(
            frames, lambda f: f.production_verdict == "OK", lambda f: f.candidate_verdict == "DEFECT"
        ),
        candidate_escape_vs_labels=_rate(frames, defective, lambda f: f.candidate_verdict == "OK"),
        production_escape_vs_labels=_rate(frames, defective, lambda f: f.production_verdict == "OK"),
        candidate_false_reject_vs_labels=_rate(frames, good, lambda f: f.candidate_verdict == "DEFECT"),
        production_false_reject_vs_labels=_rate(frames, good, lambda f: f.production_verdict == "DEFECT"),
    )


def breakdown(frames: Sequence[ComparedFrame]) -> dict[str, Any]:
    """Per line, and per class within each line, plus everything together; keys sorted (stable JSON)."""
    lines: dict[str, list[ComparedFrame]] = {}
    for frame in frames:
        lines.setdefault(frame.line, []).append(frame)
    out: dict[str, Any] = {"all": compare(frames).to_dict(), "lines": {}}
    for line in sorted(lines):
        classes: dict[str, list[ComparedFrame]] = {}
        for frame in lines[line]:
            classes.setdefault(frame.reference_class, []).append(frame)
        out["lines"][line] = {
            "all": compare(lines[line]).to_dict(),
            "classes": {name: compare(classes[name]).to_dict() for name in sorted(classes)},
        }
    return out


def histogram(scores: Iterable[float | None], bins: int = SCORE_BINS) -> list[int]:
    """Counts of scores in ``bins`` equal bins over [0, 1] (1.0 falls in the last; None is skipped)."""
    counts = [0] * bins
    for score in scores:
        if score is None or math.isnan(score):
            continue
        index = min(bins - 1, max(0, int(score * bins)))
        counts[index] += 1
    return counts


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles (a value that occurred, not an interpolation); None for no values."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for point in points:
        key = f"p{point:g}"
        if not ordered:
            out[key] = None
            continue
        rank = max(1, math.ceil(point / 100 * len(ordered)))
        out[key] = round(ordered[rank - 1], 3)
    return out
