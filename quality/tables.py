"""Every table of the report, derived from the cube with pandas (pure: unit-tested on hand-computed cases).

Definitions (documented in the README):

* inspection yield: OK inspections / inspections (DEFECT, UNCERTAIN and UNKNOWN are not OK);
* units are parts (``part_id``) where frames carry one, else frames. First-pass yield: units whose first
  inspection was OK / units; final yield: units whose last inspection was OK / units. Without part ids both
  equal the inspection yield;
* the defect rate is DEFECT / inspections; a defect's class is its first detection's label, else its best
  non-good class score;
* model drift: a version's defect rate against the rate it showed on validation data (``--expected-rate``),
  as a binomial z; |z| > 3 is flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from quality.cube import SCORE_BINS, Cube
from quality.shifts import ShiftCalendar
from quality.spc import binomial_z, p_chart
from schemas.inspections import NO_CLASS

Period = Literal["hour", "shift", "day"]
GOOD_HUMAN_LABELS = frozenset({"good", "ok"})


@dataclass(slots=True)
class Report:
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    p_bar: float = 0.0


def _rates(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """n, ok, defect, uncertain, defect_rate and yield per ``keys``."""
    wide = frame.pivot_table(index=keys, columns="verdict", values="n", aggfunc="sum", fill_value=0)
    out = pd.DataFrame(index=wide.index)
    out["n"] = wide.sum(axis=1)
    for verdict in ("OK", "DEFECT", "UNCERTAIN"):
        out[verdict.lower()] = wide[verdict] if verdict in wide.columns else 0
    out["defect_rate"] = out["defect"] / out["n"]
    out["yield"] = out["ok"] / out["n"]
    return out.reset_index()


def _pareto(defects: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    table = defects.groupby(keys)["n"].sum().rename("defects").reset_index()
    table = table.sort_values(["defects", *keys], ascending=[False, *([True] * len(keys))])
    total = table["defects"].sum()
    table["share"] = table["defects"] / total if total else 0.0
    table["cumulative_share"] = table["share"].cumsum()
    return table.reset_index(drop=True)


def summary_table(cube: Cube) -> dict[str, Any]:
    counts = cube.counts.groupby("verdict")["n"].sum()
    total = int(counts.sum())
    ok = int(counts.get("OK", 0))
    summary: dict[str, Any] = {
        "inspections": total,
        "ok": ok,
        "defect": int(counts.get("DEFECT", 0)),
        "uncertain": int(counts.get("UNCERTAIN", 0)),
        "unknown": int(counts.get("UNKNOWN", 0)),
        "inspection_yield": ok / total if total else None,
        "defect_rate": int(counts.get("DEFECT", 0)) / total if total else None,
    }
    framed = cube.counts  # frames without a part id count as units of their own
    parts = cube.parts
    units = len(parts)
    first_ok = int(parts["first_ok"].astype(bool).sum()) if units else 0
    last_ok = int(parts["last_ok"].astype(bool).sum()) if units else 0
    summary["parts"] = units
    summary["unit"] = "part" if units else "frame"
    if units:
        summary["first_pass_yield"] = first_ok / units
        summary["final_yield"] = last_ok / units
    else:
        summary["first_pass_yield"] = summary["inspection_yield"]
        summary["final_yield"] = summary["inspection_yield"]
    summary["lines"] = sorted(set(framed["line_id"]))
    summary["model_versions"] = sorted(set(framed["model_version"]))
    return summary


def _with_periods(counts: pd.DataFrame, calendar: ShiftCalendar) -> pd.DataFrame:
    hours = pd.to_datetime(counts["hour"], utc=True)
    labelled = calendar.label(hours)
    local = hours.dt.tz_convert(calendar.timezone)
    return counts.assign(
        shift=labelled["shift"],
        shift_date=labelled["shift_date"],
        day=local.dt.tz_localize(None).dt.normalize().dt.date,
    )


def build_report(
    cube: Cube,
    calendar: ShiftCalendar,
    spc_period: Period = "hour",
    expected_rates: Mapping[str, float] | None = None,
    labels: Sequence[Mapping[str, Any]] = (),
    spc_baseline: float | None = None,
) -> Report:
    """All tables; ``cube`` must not be empty (the CLI says so before)."""
    counts = _with_periods(cube.counts, calendar)
    report = Report(summary=summary_table(cube))
    tables = report.tables
    tables["yield_by_line"] = _rates(counts, ["line_id"])
    tables["yield_by_station"] = _rates(counts, ["line_id", "station_id"])
    defects = counts[counts["defect_class"] != NO_CLASS]
    tables["pareto_class"] = _pareto(defects, ["defect_class"])
    tables["pareto_station"] = _pareto(defects, ["line_id", "station_id"])
    tables["by_shift"] = _rates(counts, ["shift"])
    tables["by_shift_instance"] = _rates(counts, ["shift_date", "shift"])
    with_lot = counts[counts["lot"] != ""]
    tables["by_lot"] = _rates(with_lot, ["lot"]) if len(with_lot) else _rates(counts.iloc[:0], ["lot"])
    with_part = counts[counts["part_number"] != ""]
    tables["by_part_number"] = (
        _rates(with_part, ["part_number"]) if len(with_part) else _rates(counts.iloc[:0], ["part_number"])
    )
    tables["hourly"] = _rates(counts, ["hour"])
    tables["daily"] = _rates(counts, ["day"])
    period_keys = {"hour": ["hour"], "shift": ["shift_date", "shift"], "day": ["day"]}[spc_period]
    subgroups = _rates(counts, period_keys).rename(columns={"defect": "defective"})
    subgroups["period"] = subgroups[period_keys].astype(str).agg(" ".join, axis=1)
    chart, report.p_bar = p_chart(subgroups[["period", "n", "defective"]], p_bar=spc_baseline)
    tables["p_chart"] = chart
    report.summary["spc_period"] = spc_period
    report.summary["spc_p_bar"] = report.p_bar
    report.summary["spc_points_flagged"] = int((chart["rules"] != "").sum()) if len(chart) else 0
    tables["score_histogram"] = score_histogram(cube.scores)
    tables["model_health"] = model_health(counts, expected_rates or {})
    tables["label_agreement"] = label_agreement(labels)
    if len(tables["label_agreement"]):
        agree = tables["label_agreement"]
        decided = agree[agree["human"] != ""]
        matched = decided[decided["agrees"]]["n"].sum()
        report.summary["labels_reviewed"] = int(decided["n"].sum())
        report.summary["label_agreement"] = float(matched / decided["n"].sum()) if len(decided) else None
    return report


def score_histogram(scores: pd.DataFrame) -> pd.DataFrame:
    if not len(scores):
        return pd.DataFrame({"model_version": [], "bin_low": [], "bin_high": [], "n": []})
    table = scores.sort_values(["model_version", "bin"]).reset_index(drop=True)
    width = 1.0 / SCORE_BINS
    return pd.DataFrame(
        {
            "model_version": table["model_version"],
            "bin_low": table["bin"].astype(int) * width,
            "bin_high": (table["bin"].astype(int) + 1) * width,
            "n": table["n"].astype(int),
        }
    )


def model_health(counts: pd.DataFrame, expected_rates: Mapping[str, float]) -> pd.DataFrame:
    table = _rates(counts, ["model_version"])
    table["uncertain_share"] = table["uncertain"] / table["n"]
    expected = table["model_version"].map(lambda version: expected_rates.get(version))
    table["expected_defect_rate"] = expected
    table["drift"] = table["defect_rate"] - expected
    table["drift_z"] = [
        binomial_z(float(d), float(n), float(e)) if e is not None and e == e else None
        for d, n, e in zip(table["defect"], table["n"], expected, strict=True)
    ]
    table["drift_flag"] = [z is not None and abs(z) > 3 for z in table["drift_z"]]
    return table


def label_agreement(labels: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Model verdict against the reviewer's label: good vs defect; a flagged frame (DEFECT or UNCERTAIN)
    agrees with any defect label, and a DEFECT also matches on class when the classes are the same."""
    columns = ["model_version", "verdict", "human", "n", "agrees", "class_matches"]
    if not labels:
        return pd.DataFrame({name: [] for name in columns})
    frame = pd.DataFrame(list(labels))
    human_good = frame["human_label"].str.lower().isin(GOOD_HUMAN_LABELS)
    frame["human"] = ["good" if good else "defect" for good in human_good]
    flagged = frame["verdict"].isin(["DEFECT", "UNCERTAIN"])
    frame["agrees"] = (flagged & ~human_good) | (~flagged & human_good & (frame["verdict"] == "OK"))
    frame["class_matches"] = (frame["verdict"] == "DEFECT") & (frame["model_class"] == frame["human_label"])
    grouped = frame.groupby(["model_version", "verdict", "human", "agrees"], as_index=False).agg(
        n=("camera_id", "size"), class_matches=("class_matches", "sum")
    )
    return grouped[columns]
