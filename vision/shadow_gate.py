"""The promotion gate: a candidate becomes a line's production model only after its shadow report says so.

``lineguard shadow report`` stores one *gate summary* per line it covers next to the model registry (the
registry is where promotion happens, so the gate never needs another service): a directory registry keeps
``<root>/shadow_reports/<model>/<version>/<line>.jsonl`` (one summary per report, latest last); the GridFS
registry keeps the collection ``model_shadow_reports`` of its database.

:func:`check_gate` decides on the latest summary of the candidate for the line:

1. enough compared frames (``min_frames``);
2. escape rate not worse than production beyond production's Wilson 95 % interval: the candidate's rate must
   not exceed the interval's upper end. The reference is human labels where at least ``min_labelled``
   defective frames are labelled; otherwise production's own verdicts (production then escapes 0 of n, and
   the candidate may pass at most the interval's upper end of production's DEFECT frames);
3. false-reject rate within the line's budget (labels where enough good frames are labelled, else
   production's OK verdicts);
4. no parity failure recorded for the candidate.

A first promotion on a line (nothing in production to compare with) passes without a report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import ConfigurationError
from vision.registry import DirectoryRegistry, ModelRegistry, validate_line, validate_name
from vision.shadow_stats import Rate

if TYPE_CHECKING:  # only a MongoDB registry has the collection; pymongo comes with it
    from pymongo.collection import Collection

REPORTS_COLLECTION = "model_shadow_reports"


class GatePolicy(BaseSettings):
    """Thresholds of the promotion gate (env prefix ``LINEGUARD_GATE_``)."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_GATE_", extra="ignore")

    min_frames: int = Field(default=200, ge=1, description="compared frames a report needs")
    min_labelled: int = Field(
        default=20, ge=1, description="labelled frames (of a kind) before labels are the reference"
    )
    false_reject_budget: float = Field(default=0.02, ge=0.0, le=1.0, description="default for every line")
    line_budgets: dict[str, float] = Field(
        default_factory=dict, description='per-line false-reject budgets, e.g. {"line-1": 0.01}'
    )

    def budget(self, line: str) -> float:
        return self.line_budgets.get(line, self.false_reject_budget)


def _rate(data: dict[str, Any]) -> Rate:
    return Rate(int(data["k"]), int(data["n"]))


def gate_summary(
    report: dict[str, Any], line: str, policy: GatePolicy, parity: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The compact part of a shadow report the gate decides on, for one line of it."""
    figures = report["comparison"]["lines"][line]["all"]
    labels = figures["labels"]
    if labels["candidate_escape"]["n"] >= policy.min_labelled:
        escape = {
            "reference": "labels",
            "candidate": labels["candidate_escape"],
            "production": labels["production_escape"],
        }
    else:
        compared_defects = figures["escape_vs_production"]["n"]
        escape = {
            "reference": "production",
            "candidate": figures["escape_vs_production"],
            "production": Rate(0, compared_defects).to_dict(),
        }
    if labels["candidate_false_reject"]["n"] >= policy.min_labelled:
        false_reject = {"reference": "labels", "candidate": labels["candidate_false_reject"]}
    else:
        false_reject = {"reference": "production", "candidate": figures["false_reject_vs_production"]}
    return {
        "model": report["candidate"]["model"],
        "version": report["candidate"]["version"],
        "line": line,
        "report_id": report["report_id"],
        "generated_at": report["generated_at"],
        "frames": figures["frames"],
        "escape": escape,
        "false_reject": false_reject,
        "parity": parity or report.get("parity") or {"status": "not checked"},
    }


@dataclass(frozen=True, slots=True)
class GateDecision:
    allowed: bool
    reason: str  # one line: why refused, or what passed


def check_gate(
    summary: dict[str, Any] | None,
    model: str,
    version: str,
    line: str,
    policy: GatePolicy,
    parity: dict[str, Any] | None = None,
) -> GateDecision:
    """Decide whether ``model:version`` may become production on ``line``; ``parity`` is the candidate's
    latest golden-replay parity record (``lineguard shadow golden``), if any."""
    if parity is not None and parity.get("status") == "failed":
        return GateDecision(
            False, f"Keras-vs-ONNX parity failed: {parity.get('detail', 'see the golden report')}"
        )
    if summary is None:
        return GateDecision(
            False,
            f"no shadow report of {model} {version} on line {line}: run `lineguard shadow run` and "
            "`lineguard shadow report` first (or --force --reason TEXT)",
        )
    frames = int(summary["frames"])
    if frames < policy.min_frames:
        return GateDecision(
            False,
            f"shadow report {summary['report_id']} compared {frames} frames, "
            f"the gate needs {policy.min_frames}",
        )
    escape = summary["escape"]
    candidate, production = _rate(escape["candidate"]), _rate(escape["production"])
    ceiling = production.interval[1]
    if candidate.rate is not None and candidate.rate > ceiling:
        return GateDecision(
            False,
            f"escape rate {candidate.rate:.2%} ({candidate.k}/{candidate.n}, vs {escape['reference']}) "
            f"is worse than production's {production.rate or 0:.2%} beyond its 95% interval "
            f"(up to {ceiling:.2%})",
        )
    rejects = _rate(summary["false_reject"]["candidate"])
    budget = policy.budget(line)
    if rejects.rate is not None and rejects.rate > budget:
        return GateDecision(
            False,
            f"false-reject rate {rejects.rate:.2%} ({rejects.k}/{rejects.n}, vs "
            f"{summary['false_reject']['reference']}) is over line {line}'s budget of {budget:.2%}",
        )
    parity = summary.get("parity") or {}
    if parity.get("status") == "failed":
        return GateDecision(False, f"Keras-vs-ONNX parity failed: {parity.get('detail', 'see the report')}")
    return GateDecision(
        True,
        f"shadow gate passed: report {summary['report_id']}, {frames} frames, escape "
        f"{candidate.rate or 0:.2%} (production {production.rate or 0:.2%}), "
        f"false reject {rejects.rate or 0:.2%}",
    )


# ------------------------------------------------------------------------------------------ the store


def _line_file(line: str) -> str:
    return "_fleet_" if line == "*" else line


class ShadowReportStore:
    """Gate summaries of shadow reports, kept with the registry they gate."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._root: Path | None = (
            registry.root / "shadow_reports" if isinstance(registry, DirectoryRegistry) else None
        )

    def _collection(self) -> Collection[dict[str, Any]]:
        return self._registry._db[REPORTS_COLLECTION]  # type: ignore[attr-defined]

    def put(self, summary: dict[str, Any]) -> None:
        model = validate_name("model name", summary["model"])
        version = validate_name("version", summary["version"])
        line = validate_line(summary["line"])
        if self._root is None:
            self._collection().insert_one(
                {**summary, "_id": f"{model}:{version}:{line}:{summary['report_id']}"}
            )
            return
        folder = self._root / model / version
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{_line_file(line)}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(summary, sort_keys=True) + "\n")

    def put_parity(self, record: dict[str, Any]) -> None:
        """A golden replay's parity result for ``record['model']`` ``record['version']``."""
        model = validate_name("model name", record["model"])
        version = validate_name("version", record["version"])
        if self._root is None:
            self._collection().insert_one({**record, "kind": "parity", "line": None})
            return
        folder = self._root / model / version
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "parity.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def latest_parity(self, model: str, version: str) -> dict[str, Any] | None:
        validate_name("model name", model)
        validate_name("version", version)
        if self._root is None:
            found = self._collection().find_one(
                {"model": model, "version": version, "kind": "parity"}, {"_id": 0}, sort=[("checked_at", -1)]
            )
            return dict(found) if found else None
        return _last_row(self._root / model / version / "parity.jsonl")

    def latest(self, model: str, version: str, line: str) -> dict[str, Any] | None:
        validate_name("model name", model)
        validate_name("version", version)
        validate_line(line)
        if self._root is None:
            found = self._collection().find_one(
                {"model": model, "version": version, "line": line},
                {"_id": 0},
                sort=[("generated_at", -1)],
            )
            return dict(found) if found else None
        return _last_row(self._root / model / version / f"{_line_file(line)}.jsonl")


def _last_row(path: Path) -> dict[str, Any] | None:
    try:
        rows = [row for row in path.read_text(encoding="utf-8").splitlines() if row.strip()]
    except FileNotFoundError:
        return None
    try:
        return dict(json.loads(rows[-1])) if rows else None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"shadow report file {path} is unreadable: {exc}") from exc
