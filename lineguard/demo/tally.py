"""What the demo has seen so far, and how right the verdicts were: pure bookkeeping, safe across threads.

The camera thread records each frame's ground truth as it publishes it (:meth:`DemoTally.expect`); the
watcher thread adds results and dead letters as they arrive; the display thread takes snapshots. Results of
frames this run did not publish (a backlog left by an interrupted earlier run) are counted apart and kept
out of every figure.

Scoring: a frame is *truly defective* when its ground truth lists a defect class; it is *flagged* when the
verdict is DEFECT or UNCERTAIN (an uncertain part is diverted for review on a real line, so it counts as a
flag). The predicted class follows the verdict: ``good`` when OK, else the best defect class score
(classifiers) or the best detection's label.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.records import InspectionResult, Verdict

GOOD = "good"
UNKNOWN_CLASS = "defect (no class)"
FLAGGED = frozenset({Verdict.DEFECT, Verdict.UNCERTAIN})

FrameIdentity = tuple[str, int]


def predicted_class(result: InspectionResult) -> str:
    """The class a result names, consistent with its verdict (the worker's thresholds decide that): good for
    an OK verdict; for a flagged one the best-scoring defect class, else the best detection's label."""
    if result.verdict not in FLAGGED:
        return GOOD
    defect_scores = [score for score in result.class_scores if score.label != GOOD]
    if defect_scores:
        return max(defect_scores, key=lambda score: score.score).label
    if result.detections:
        return max(result.detections, key=lambda detection: detection.score).label
    return UNKNOWN_CLASS


def truth_class(labels: tuple[str, ...]) -> str:
    """The ground-truth class of a frame: its first defect label, or good."""
    return labels[0] if labels else GOOD


@dataclass(frozen=True, slots=True)
class Scored:
    """One result matched with its frame's ground truth."""

    truth: str
    predicted: str
    verdict: Verdict
    latency_s: float
    # Where the latency went, from the result's own timestamps (None when unknown):
    to_worker_s: float | None = None  # capture -> the worker received the frame (camera, Kafka, prefetch)
    in_worker_s: float | None = None  # received -> inferred (decode, batching, queue for the model, model)
    to_output_s: float | None = None  # inferred -> result record stamped (building, queue for the producer)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live figures at one moment."""

    produced: int
    results: int
    results_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    verdicts: dict[str, int]
    defects_by_class: dict[str, int]
    defect_events: int
    dead_letters: int
    dead_letters_by_reason: dict[str, int]
    foreign_results: int
    outstanding: int  # published frames with neither a result nor a dead letter yet


def percentile_ms(latencies_s: Iterable[float], q: float) -> float | None:
    values = np.fromiter(latencies_s, dtype=np.float64)
    return float(np.percentile(values, q) * 1000.0) if values.size else None


class DemoTally:
    """Thread-safe counters of one demo run; the live results/s is taken over ``rate_window_s``."""

    def __init__(self, rate_window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._rate_window_s = rate_window_s
        self._truth: dict[FrameIdentity, tuple[str, ...]] = {}
        self._seen: set[FrameIdentity] = set()
        self._scored: list[Scored] = []
        self._arrivals: deque[float] = deque()
        self._first_arrival: float | None = None
        self._last_arrival: float | None = None
        self._duplicates = 0
        self._foreign = 0
        self._events = 0
        self._dead_letters: Counter[str] = Counter()

    # -- writers ----------------------------------------------------------------------------------------
    def expect(self, identity: FrameIdentity, labels: tuple[str, ...]) -> None:
        """A frame this run published, with its ground-truth defect labels (empty = good part)."""
        with self._lock:
            self._truth[identity] = labels

    def add_result(self, result: InspectionResult, latency_s: float) -> bool:
        """Count one result; False when it is not of a frame this run published (or a duplicate)."""
        identity = result.identity
        now = self._clock()
        with self._lock:
            labels = self._truth.get(identity)
            if labels is None:
                self._foreign += 1
                return False
            if identity in self._seen:  # at-least-once delivery may repeat a result: count the frame once
                self._duplicates += 1
                return False
            self._seen.add(identity)
            to_worker = (result.received_at - result.captured_at).total_seconds()
            in_worker = (result.inferred_at - result.received_at).total_seconds()
            self._scored.append(
                Scored(
                    truth_class(labels),
                    predicted_class(result),
                    result.verdict,
                    max(0.0, latency_s),
                    to_worker_s=to_worker,
                    in_worker_s=in_worker,
                    to_output_s=latency_s - to_worker - in_worker,
                )
            )
            self._arrivals.append(now)
            self._first_arrival = self._first_arrival if self._first_arrival is not None else now
            self._last_arrival = now
            return True

    def add_defect_event(self) -> None:
        with self._lock:
            self._events += 1

    def add_dead_letter(self, reason: str) -> None:
        with self._lock:
            self._dead_letters[reason] += 1

    # -- readers ----------------------------------------------------------------------------------------
    @property
    def produced(self) -> int:
        with self._lock:
            return len(self._truth)

    def identities(self) -> list[FrameIdentity]:
        """The frames this run published."""
        with self._lock:
            return list(self._truth)

    @property
    def settled(self) -> int:
        """Published frames accounted for: a result or a dead letter."""
        with self._lock:
            return len(self._seen) + sum(self._dead_letters.values())

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            while self._arrivals and self._arrivals[0] < now - self._rate_window_s:
                self._arrivals.popleft()
            span = self._rate_window_s
            if self._first_arrival is not None and now - self._first_arrival < span:
                span = max(now - self._first_arrival, 1e-3)
            latencies = [s.latency_s for s in self._scored]
            verdicts = Counter(s.verdict.value for s in self._scored)
            defects = Counter(s.predicted for s in self._scored if s.verdict is Verdict.DEFECT)
            dead = sum(self._dead_letters.values())
            return Snapshot(
                produced=len(self._truth),
                results=len(self._scored),
                results_per_s=len(self._arrivals) / span if self._arrivals else 0.0,
                p50_ms=percentile_ms(latencies, 50),
                p99_ms=percentile_ms(latencies, 99),
                verdicts=dict(verdicts),
                defects_by_class=dict(defects.most_common()),
                defect_events=self._events,
                dead_letters=dead,
                dead_letters_by_reason=dict(self._dead_letters.most_common()),
                foreign_results=self._foreign,
                outstanding=max(0, len(self._truth) - len(self._seen) - dead),
            )

    def throughput_fps(self) -> float:
        """Results per second between the first and the last result of this run."""
        with self._lock:
            if self._first_arrival is None or self._last_arrival is None or len(self._scored) < 2:
                return 0.0
            span = self._last_arrival - self._first_arrival
            return (len(self._scored) - 1) / span if span > 0 else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        with self._lock:
            latencies = [s.latency_s for s in self._scored]
        return {
            "p50": percentile_ms(latencies, 50),
            "p90": percentile_ms(latencies, 90),
            "p99": percentile_ms(latencies, 99),
            "max": percentile_ms(latencies, 100),
        }

    def latency_segments_ms(self) -> dict[str, dict[str, float | None]]:
        """p50/p99 of each part of the capture-to-result latency (``Scored``'s segments), to see where a
        tail comes from. Segments straddle clocks of different hosts where camera and worker differ."""
        with self._lock:
            scored = list(self._scored)
        segments: dict[str, dict[str, float | None]] = {}
        for name in ("to_worker_s", "in_worker_s", "to_output_s"):
            values = [value for s in scored if (value := getattr(s, name)) is not None]
            segments[name.removesuffix("_s")] = {
                "p50": percentile_ms(values, 50),
                "p99": percentile_ms(values, 99),
            }
        return segments

    def accuracy(self, model_classes: Iterable[str] = ()) -> dict[str, Any]:
        """Verdict accuracy/precision/recall against the ground truth, and per-class scores."""
        with self._lock:
            scored = list(self._scored)
        return score_verdicts(scored, model_classes)

    @property
    def duplicates(self) -> int:
        with self._lock:
            return self._duplicates


def score_verdicts(scored: list[Scored], model_classes: Iterable[str] = ()) -> dict[str, Any]:
    """Binary defect-verdict metrics and, when the results name classes, per-class metrics."""
    from vision.metrics import classification_metrics

    tp = sum(1 for s in scored if s.truth != GOOD and s.verdict in FLAGGED)
    fp = sum(1 for s in scored if s.truth == GOOD and s.verdict in FLAGGED)
    tn = sum(1 for s in scored if s.truth == GOOD and s.verdict not in FLAGGED)
    fn = sum(1 for s in scored if s.truth != GOOD and s.verdict not in FLAGGED)
    total = tp + fp + tn + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    verdict = {
        "frames": total,
        "truly_defective": tp + fn,
        "flagged": tp + fp,
        "uncertain": sum(1 for s in scored if s.verdict is Verdict.UNCERTAIN),
        "accuracy": (tp + tn) / total if total else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "true_positive": tp,
        "false_positive": fp,
        "true_negative": tn,
        "false_negative": fn,
    }
    classes: dict[str, Any] | None = None
    named = [s for s in scored if s.predicted != UNKNOWN_CLASS]
    if named:
        seen = [*(s.truth for s in named), *(s.predicted for s in named)]
        order = list(dict.fromkeys([GOOD, *model_classes, *seen]))
        index = {name: k for k, name in enumerate(order)}
        metrics = classification_metrics(
            [index[s.truth] for s in named], [index[s.predicted] for s in named], order
        )
        classes = {
            "frames": len(named),
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "per_class": metrics["per_class"],
        }
    return {"verdict": verdict, "classes": classes}
