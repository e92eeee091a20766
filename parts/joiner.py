"""The per-part join (pure, injectable clock): views in, one decision per part out, state as changelog
entries.

One :class:`PartJoiner` holds the parts of one partition of the part-views topic (keyed by part id, so every
view of a part lands in the same partition). Each change to a part's state is returned as a changelog entry
(``part_id -> bytes``, or a tombstone) for a compacted topic, so a joiner that takes the partition over after
a restart or rebalance rebuilds exactly this state with :meth:`PartJoiner.restore`.

A decided part is remembered (as a small "decided" entry) for ``decided_retention_s``: a late or replayed view
of it is counted and ignored instead of starting a second decision for the same part.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from parts.rules import LineRule, PartRules, decide
from schemas.parts import PartDecision, PartView
from schemas.records import InspectionResult, Verdict

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHANGELOG_VERSION = 1


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def view_of(result: InspectionResult) -> PartView:
    """A frame result as a part view: its verdict and its strongest defect label, if any."""
    label: str | None = None
    score = 0.0
    if result.verdict is not Verdict.OK:
        if result.detections:
            top = max(result.detections, key=lambda detection: detection.score)
            label, score = top.label, top.score
        elif result.class_scores:
            top_score = max(result.class_scores, key=lambda class_score: class_score.score)
            label, score = top_score.label, top_score.score
    return PartView(
        camera_id=result.camera_id,
        station_id=result.station_id,
        frame_number=result.frame_number,
        verdict=result.verdict,
        label=label,
        score=min(max(float(score), 0.0), 1.0),
    )


@dataclass(slots=True)
class PendingPart:
    part_id: str
    line_id: str
    first_captured_at: datetime
    views: dict[str, PartView] = field(default_factory=dict)

    def to_changelog(self) -> bytes:
        return json.dumps(
            {
                "v": CHANGELOG_VERSION,
                "state": "pending",
                "line_id": self.line_id,
                "first_captured_at_us": _micros(self.first_captured_at),
                "views": [view.to_dict() for view in self.views.values()],
            },
            separators=(",", ":"),
        ).encode()


@dataclass(slots=True)
class JoinCounters:
    decided: int = 0
    timed_out: int = 0
    late_views: int = 0  # views of a part already decided (replays, stragglers): ignored
    duplicate_views: int = 0  # a camera reporting the same part twice: the first view counts
    unconfigured: int = 0  # views of a line with no rule and no default: logged by the caller, not joined


@dataclass(frozen=True, slots=True)
class JoinOutput:
    decisions: list[PartDecision]
    changelog: list[tuple[str, bytes]]  # part id -> state, in order


def _decided_entry(decided_at: datetime) -> bytes:
    return json.dumps(
        {"v": CHANGELOG_VERSION, "state": "decided", "decided_at_us": _micros(decided_at)},
        separators=(",", ":"),
    ).encode()


class PartJoiner:
    """Joins the views of the parts of one partition."""

    def __init__(
        self,
        rules: PartRules,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        decided_retention_s: float = 600.0,
    ) -> None:
        self._rules = rules
        self._clock = clock
        self._retention = timedelta(seconds=decided_retention_s)
        self.pending: dict[str, PendingPart] = {}
        self.decided: dict[str, datetime] = {}  # part id -> decided at (insertion order = time order)
        self.counters = JoinCounters()

    def restore(self, entries: Iterable[tuple[str, bytes | None]]) -> None:
        """Rebuild the state from a changelog partition read from its beginning (last entry per key wins)."""
        now = self._clock()
        for part_id, value in entries:
            self.pending.pop(part_id, None)
            self.decided.pop(part_id, None)
            if value is None:
                continue
            entry = json.loads(value)
            if entry["state"] == "decided":
                decided_at = _from_micros(entry["decided_at_us"])
                if now - decided_at < self._retention:
                    self.decided[part_id] = decided_at
            else:
                self.pending[part_id] = PendingPart(
                    part_id=part_id,
                    line_id=entry["line_id"],
                    first_captured_at=_from_micros(entry["first_captured_at_us"]),
                    views={view["camera_id"]: PartView.from_dict(view) for view in entry["views"]},
                )
        self.decided = dict(sorted(self.decided.items(), key=lambda item: item[1]))

    def add(self, part_id: str, result: InspectionResult) -> JoinOutput:
        """Add one view; returns the part's decision once its expected views are all in."""
        if part_id in self.decided:
            self.counters.late_views += 1
            return JoinOutput([], [])
        line_rule = self._rules.for_line(result.line_id)
        if line_rule is None:
            self.counters.unconfigured += 1
            return JoinOutput([], [])
        part = self.pending.get(part_id)
        if part is None:
            part = PendingPart(part_id, result.line_id, result.captured_at)
            self.pending[part_id] = part
        if result.camera_id in part.views:
            self.counters.duplicate_views += 1
            return JoinOutput([], [])
        part.views[result.camera_id] = view_of(result)
        part.first_captured_at = min(part.first_captured_at, result.captured_at)
        if line_rule.complete(part.views):
            return self._decide(part, line_rule, timed_out=False)
        return JoinOutput([], [(part_id, part.to_changelog())])

    def sweep(self) -> JoinOutput:
        """Decide the parts whose timeout passed (and complete ones restored from a changelog); forget old
        decided parts. Called every loop iteration."""
        now = self._clock()
        decisions: list[PartDecision] = []
        changelog: list[tuple[str, bytes]] = []
        for part in list(self.pending.values()):
            line_rule = self._rules.for_line(part.line_id)
            if line_rule is None:
                continue
            complete = line_rule.complete(part.views)
            deadline = part.first_captured_at + timedelta(milliseconds=line_rule.timeout_ms)
            if complete or now >= deadline:
                output = self._decide(part, line_rule, timed_out=not complete)
                decisions += output.decisions
                changelog += output.changelog
        while self.decided:
            oldest, decided_at = next(iter(self.decided.items()))
            if now - decided_at < self._retention:
                break
            del self.decided[oldest]
        return JoinOutput(decisions, changelog)

    def _decide(self, part: PendingPart, line_rule: LineRule, timed_out: bool) -> JoinOutput:
        now = self._clock()
        decision = decide(
            part.part_id, part.line_id, line_rule, part.views, part.first_captured_at, now, timed_out
        )
        del self.pending[part.part_id]
        self.decided[part.part_id] = now
        self.counters.decided += 1
        self.counters.timed_out += int(timed_out)
        return JoinOutput([decision], [(part.part_id, _decided_entry(now))])
