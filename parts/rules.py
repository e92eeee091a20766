"""How the verdicts of a part's views become one decision, and the per-line configuration that says so (pure).

A configuration file (YAML or JSON) names, per line, the views a part must have, the joining rule and how long
the joiner waits for the views:

```yaml
default: {expected_views: 1, rule: any-ng, timeout_ms: 2000}
lines:
  line-1:
    expected_views: [cam-top, cam-left, cam-right]   # or a count: 3 distinct cameras
    rule: per-station                                 # any-ng | all-ok | majority | per-station
    station_rules: {station-2: majority}              # per-station only; other stations: any-ng
    uncertain_is_ng: true                             # UNCERTAIN/UNKNOWN views count as NG (fail-safe)
    timeout_ms: 1500                                  # from the first view's capture time
```
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError
from schemas.parts import PartDecision, PartDecisionReason, PartOutcome, PartView
from schemas.records import Verdict


class JoinRule(StrEnum):
    any_ng = "any-ng"  # reject when any view is NG
    all_ok = (
        "all-ok"  # pass only when every view is OK (UNCERTAIN/UNKNOWN reject, whatever uncertain_is_ng says)
    )
    majority = "majority"  # reject when at least half of the views are NG (a tie rejects: fail-safe)
    per_station = "per-station"  # each station decides by its own rule; any station rejecting rejects


@dataclass(frozen=True, slots=True)
class LineRule:
    """What one line expects of a part and how it decides."""

    expected_cameras: frozenset[str] = frozenset()  # empty: any `expected_count` distinct cameras
    expected_count: int = 1
    rule: JoinRule = JoinRule.any_ng
    station_rules: Mapping[str, JoinRule] = field(default_factory=dict)
    uncertain_is_ng: bool = True
    timeout_ms: float = 2000.0

    def complete(self, views: Mapping[str, PartView]) -> bool:
        if self.expected_cameras:
            return self.expected_cameras <= views.keys()
        return len(views) >= self.expected_count

    def missing(self, views: Mapping[str, PartView]) -> tuple[str, ...]:
        if self.expected_cameras:
            return tuple(sorted(self.expected_cameras - views.keys()))
        return tuple(f"view-{n + 1}" for n in range(len(views), self.expected_count))


@dataclass(frozen=True, slots=True)
class PartRules:
    """Rules by line, with an optional default for lines the file does not name."""

    lines: Mapping[str, LineRule] = field(default_factory=dict)
    default: LineRule | None = None

    def for_line(self, line_id: str) -> LineRule | None:
        return self.lines.get(line_id, self.default)


def _is_ng(view: PartView, uncertain_is_ng: bool) -> bool:
    if view.verdict is Verdict.DEFECT:
        return True
    return view.verdict is not Verdict.OK and uncertain_is_ng


def _rejects(rule: JoinRule, views: Iterable[PartView], uncertain_is_ng: bool) -> bool:
    views = list(views)
    if rule is JoinRule.all_ok:
        return any(view.verdict is not Verdict.OK for view in views)
    ng = sum(1 for view in views if _is_ng(view, uncertain_is_ng))
    if rule is JoinRule.majority:
        return ng * 2 >= len(views) and ng > 0
    return ng > 0


def decide(
    part_id: str,
    line_id: str,
    line_rule: LineRule,
    views: Mapping[str, PartView],
    first_captured_at: datetime,
    decided_at: datetime,
    timed_out: bool = False,
) -> PartDecision:
    """The part's decision from the views that arrived; ``timed_out`` rejects a part missing views."""
    ordered = tuple(views[camera] for camera in sorted(views))
    missing = line_rule.missing(views)
    ng_views = [view for view in ordered if _is_ng(view, line_rule.uncertain_is_ng)]
    label_view = max((view for view in ng_views if view.label), key=lambda view: view.score, default=None)
    if timed_out and missing:
        outcome, reason = PartOutcome.REJECT, PartDecisionReason.MISSING_VIEWS
    else:
        missing = ()
        if line_rule.rule is JoinRule.per_station:
            by_station: dict[str, list[PartView]] = {}
            for view in ordered:
                by_station.setdefault(view.station_id, []).append(view)
            rejected = any(
                _rejects(
                    line_rule.station_rules.get(station, JoinRule.any_ng),
                    station_views,
                    line_rule.uncertain_is_ng,
                )
                for station, station_views in by_station.items()
            )
        else:
            rejected = _rejects(line_rule.rule, ordered, line_rule.uncertain_is_ng)
        if not rejected:
            outcome, reason = PartOutcome.PASS, PartDecisionReason.ALL_OK
        elif any(view.verdict is Verdict.DEFECT for view in ordered):
            outcome, reason = PartOutcome.REJECT, PartDecisionReason.DEFECT
        else:
            outcome, reason = PartOutcome.REJECT, PartDecisionReason.UNCERTAIN
    return PartDecision(
        part_id=part_id,
        line_id=line_id,
        decision=outcome,
        reason=reason,
        rule=line_rule.rule.value,
        defect_label=label_view.label if label_view is not None and outcome is PartOutcome.REJECT else None,
        views=ordered,
        missing_views=missing,
        first_captured_at=first_captured_at,
        decided_at=decided_at,
    )


# -- configuration ---------------------------------------------------------------------------------------

_LINE_KEYS = {"expected_views", "rule", "station_rules", "uncertain_is_ng", "timeout_ms"}


def _join_rule(value: object, where: str) -> JoinRule:
    try:
        return JoinRule(str(value))
    except ValueError:
        choices = ", ".join(rule.value for rule in JoinRule)
        raise ConfigurationError(f"{where}: rule must be one of {choices}, got {value!r}") from None


def line_rule_from_dict(data: Mapping[str, Any], where: str) -> LineRule:
    """One line's rule from its configuration entry; every mistake is one ConfigurationError naming it."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - _LINE_KEYS
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    expected = data.get("expected_views", 1)
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 1:
        cameras: frozenset[str] = frozenset()
        count = expected
    elif isinstance(expected, list) and expected and all(isinstance(c, str) and c for c in expected):
        cameras = frozenset(expected)
        count = len(cameras)
    else:
        raise ConfigurationError(
            f"{where}: expected_views must be a count >= 1 or a non-empty list of camera ids"
        )
    timeout_ms = data.get("timeout_ms", 2000)
    if not isinstance(timeout_ms, int | float) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
        raise ConfigurationError(f"{where}: timeout_ms must be a positive number, got {timeout_ms!r}")
    station_rules = data.get("station_rules", {})
    if not isinstance(station_rules, Mapping):
        raise ConfigurationError(f"{where}: station_rules must map station ids to rules")
    uncertain = data.get("uncertain_is_ng", True)
    if not isinstance(uncertain, bool):
        raise ConfigurationError(f"{where}: uncertain_is_ng must be true or false")
    return LineRule(
        expected_cameras=cameras,
        expected_count=count,
        rule=_join_rule(data.get("rule", "any-ng"), where),
        station_rules={
            str(station): _join_rule(rule, f"{where}.station_rules.{station}")
            for station, rule in station_rules.items()
        },
        uncertain_is_ng=uncertain,
        timeout_ms=float(timeout_ms),
    )


def part_rules_from_dict(data: Mapping[str, Any]) -> PartRules:
    if not isinstance(data, Mapping) or not set(data) <= {"lines", "default"}:
        raise ConfigurationError("part rules: expected a mapping with `lines` and optionally `default`")
    lines = data.get("lines") or {}
    if not isinstance(lines, Mapping):
        raise ConfigurationError("part rules: `lines` must map line ids to rules")
    default = data.get("default")
    return PartRules(
        lines={str(line): line_rule_from_dict(rule, f"lines.{line}") for line, rule in lines.items()},
        default=line_rule_from_dict(default, "default") if default is not None else None,
    )


def load_part_rules(path: Path) -> PartRules:
    """Read the rules file (YAML or JSON); a missing or malformed file is a ConfigurationError."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read part rules {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"part rules {path} are not valid YAML/JSON: {exc}") from None
    return part_rules_from_dict(data or {})
