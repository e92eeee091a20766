"""The self-contained HTML report: the summary, the plots as base64 PNG and every table."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from quality.spc import RULES
from quality.tables import Report

if TYPE_CHECKING:  # matplotlib loads when a chart is drawn
    from matplotlib.axes import Axes

TABLE_ROWS = 60  # the HTML shows the head of long tables; CSV/JSON hold all rows


def _figure(draw: Callable[[Axes], None], width: float = 8.0, height: float = 3.2) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=90)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _pareto(table: pd.DataFrame, label: str) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        labels = table[label].astype(str).tolist()
        ax.bar(labels, table["defects"], color="#c0504d")
        ax.set_ylabel("defects")
        twin = ax.twinx()
        twin.plot(labels, table["cumulative_share"] * 100, color="#333", marker="o")
        twin.set_ylim(0, 105)
        twin.set_ylabel("cumulative %")
        ax.tick_params(axis="x", rotation=30)

    return draw


def _p_chart(chart: pd.DataFrame, p_bar: float) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        x = range(len(chart))
        ax.plot(x, chart["p"], marker=".", color="#1f77b4", label="p")
        ax.step(x, chart["ucl"], where="mid", color="#c0504d", label="UCL/LCL")
        ax.step(x, chart["lcl"], where="mid", color="#c0504d")
        ax.axhline(p_bar, color="#555", linestyle="--", label="p-bar")
        flagged = chart["rules"] != ""
        ax.scatter(
            [i for i, f in zip(x, flagged, strict=True) if f],
            chart["p"][flagged],
            color="red",
            zorder=3,
            label="rule flagged",
        )
        ax.set_ylabel("defective share")
        ax.legend(loc="upper left", fontsize=7)

    return draw


def _trend(table: pd.DataFrame, key: str) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        ax.plot(pd.to_datetime(table[key]), table["defect_rate"] * 100, marker=".")
        ax.set_ylabel("defect rate %")
        ax.tick_params(axis="x", rotation=30)

    return draw


def _scores(table: pd.DataFrame) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        for version, rows in table.groupby("model_version"):
            ax.step(rows["bin_low"], rows["n"], where="post", label=str(version))
        ax.set_xlabel("defect score")
        ax.set_ylabel("frames")
        ax.set_yscale("log")
        ax.legend(fontsize=7)

    return draw


def _percent(value: object) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.2f} %"  # type: ignore[arg-type]


def render_html(report: Report, query: str) -> str:
    s = report.summary
    tables = report.tables
    parts: list[str] = [
        "<!doctype html><html><head><meta charset='utf-8'><title>lineguard quality report</title><style>"
        "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px;"
        "margin-bottom:16px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        ".kpi{display:inline-block;margin:0 18px 12px 0}.kpi b{display:block;font-size:22px}"
        "h2{border-bottom:1px solid #ddd;margin-top:28px}</style></head><body>",
        f"<h1>Quality report</h1><p>{html.escape(query)}</p>",
    ]
    kpis = [
        ("inspections", f"{s['inspections']:,}"),
        ("inspection yield", _percent(s["inspection_yield"])),
        (f"first-pass yield ({s['unit']}s)", _percent(s["first_pass_yield"])),
        ("final yield", _percent(s["final_yield"])),
        ("defect rate", _percent(s["defect_rate"])),
        ("SPC points flagged", str(s["spc_points_flagged"])),
    ]
    if s.get("label_agreement") is not None:
        kpis.append((f"agreement with {s['labels_reviewed']} labels", _percent(s["label_agreement"])))
    parts.append("".join(f"<div class='kpi'>{html.escape(k)}<b>{v}</b></div>" for k, v in kpis))
    if len(tables["pareto_class"]):
        pareto = _figure(_pareto(tables["pareto_class"], "defect_class"))
        parts.append("<h2>Defect Pareto by class</h2>" + pareto)
    if len(tables["p_chart"]):
        rules = "; ".join(f"{number}: {text}" for number, text in RULES.items())
        parts.append(
            f"<h2>p-chart per {s['spc_period']}</h2><p>Western Electric rules: {html.escape(rules)}</p>"
            + _figure(_p_chart(tables["p_chart"], report.p_bar), height=3.6)
        )
    parts.append("<h2>Hourly defect rate</h2>" + _figure(_trend(tables["hourly"], "hour")))
    if len(tables["score_histogram"]):
        scores = _figure(_scores(tables["score_histogram"]))
        parts.append("<h2>Model health: score distribution</h2>" + scores)
    for name, table in tables.items():
        shown = table.head(TABLE_ROWS)
        more = f" (first {TABLE_ROWS} of {len(table)} rows)" if len(table) > TABLE_ROWS else ""
        parts.append(f"<h2>{html.escape(name)}{more}</h2>")
        parts.append(
            shown.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)
            if len(shown)
            else "<p>none</p>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def write_html(report: Report, query: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(render_html(report, query), encoding="utf-8")
    return path
