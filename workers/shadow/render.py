"""The shadow report as files: ``report.json`` (everything), ``report.md`` (what a reviewer reads) and
``scores.png`` (score distributions of both models, escape and false-reject rates per line with their
95 % intervals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _pct(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "n/a (0 frames)"
    return f"{rate['rate']:.2%} ({rate['k']}/{rate['n']}; 95% CI {rate['low']:.2%}-{rate['high']:.2%})"


def _row(name: str, figures: dict[str, Any]) -> str:
    labels = figures["labels"]
    cells = [
        name,
        str(figures["frames"]),
        _pct(figures["agreement"]),
        _pct(figures["escape_vs_production"]),
        _pct(figures["false_reject_vs_production"]),
        f"{_pct(labels['candidate_escape'])} vs {_pct(labels['production_escape'])}",
        f"{_pct(labels['candidate_false_reject'])} vs {_pct(labels['production_false_reject'])}",
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(report: dict[str, Any], gate: dict[str, str] | None = None) -> str:
    cand = report["candidate"]
    frames = report["frames"]
    lines = [
        f"# Shadow report: {cand['model']} {cand['version']}",
        "",
        f"Report `{report['report_id']}`, generated {report['generated_at']}. Production versions compared: "
        + (", ".join(f"{k} ({v} frames)" for k, v in report["production"]["versions"].items()) or "none"),
        "",
        f"Frames: {frames['shadow']} inspected by the candidate, {frames['compared']} compared with "
        f"production, {frames['labelled']} labelled by reviewers, {frames['disagreeing']} disagreeing.",
        "",
        "Escape = a defective part passed OK; false reject = a good part given DEFECT. "
        "Labels columns: candidate vs production.",
        "",
        "| group | frames | agreement | escape vs production | false reject vs production "
        "| escape vs labels | false reject vs labels |",
        "|---|---|---|---|---|---|---|",
        _row("all", report["comparison"]["all"]),
    ]
    for line, figures in report["comparison"]["lines"].items():
        lines.append(_row(f"line {line}", figures["all"]))
        for name, per_class in figures["classes"].items():
            lines.append(_row(f"line {line} / {name}", per_class))
    lines += ["", "## Confusion (rows: production, columns: candidate)", ""]
    confusion = report["comparison"]["all"]["confusion"]
    columns = sorted({c for row in confusion.values() for c in row})
    lines.append("| production \\ candidate | " + " | ".join(columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for verdict, row in confusion.items():
        lines.append(f"| {verdict} | " + " | ".join(str(row.get(c, 0)) for c in columns) + " |")
    timing = report["timing"]
    lines += ["", "## Timing (received -> inferred)", ""]
    for who in ("candidate", "production"):
        t = timing[who]
        p = t["received_to_inferred_ms"]
        lines.append(
            f"- {who}: p50 {p['p50']} ms, p95 {p['p95']} ms, p99 {p['p99']} ms, "
            f"{t['frames_per_second']} frames/s"
        )
    if gate:
        lines += ["", "## Promotion gate", ""]
        lines += [f"- line {line}: {verdict}" for line, verdict in sorted(gate.items())]
    lines += ["", f"## Disagreements (first {len(report['disagreements'])})", ""]
    lines.append("| line | camera | frame | production | candidate | scores (prod / cand) | label | link |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for d in report["disagreements"]:
        scores = f"{d['production_score']} / {d['candidate_score']}"
        lines.append(
            f"| {d['line']} | {d['camera']} | {d['frame_number']} | {d['production']} | {d['candidate']} "
            f"| {scores} | {d['label'] or ''} | {d['link']} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (scores, rates) = plt.subplots(1, 2, figsize=(11, 4))
    bins = report["scores"]["bins"]
    edges = [i / bins for i in range(bins)]
    for who, colour in (("production", "tab:blue"), ("candidate", "tab:orange")):
        scores.bar(
            edges, report["scores"][who], width=1 / bins, align="edge", alpha=0.5, color=colour, label=who
        )
    scores.set(title="defect score distribution", xlabel="defect score", ylabel="frames")
    scores.legend()
    names: list[str] = []
    values: list[float] = []
    errors: list[list[float]] = [[], []]
    for line, figures in report["comparison"]["lines"].items():
        for key, short in (("escape_vs_production", "escape"), ("false_reject_vs_production", "false rej.")):
            rate = figures["all"][key]
            value = rate["rate"] or 0.0
            names.append(f"{line}\n{short}")
            values.append(value)
            errors[0].append(value - rate["low"])
            errors[1].append(rate["high"] - value)
    rates.bar(range(len(values)), values, yerr=errors, capsize=4, color="tab:red", alpha=0.7)
    rates.set_xticks(range(len(values)), names)
    rates.set(title="candidate vs production (95% Wilson)", ylabel="rate")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_report(report: dict[str, Any], out: Path, gate: dict[str, str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "scores.png"]
    paths[0].write_text(json.dumps({**report, "gate": gate or {}}, indent=2, sort_keys=True) + "\n")
    paths[1].write_text(markdown(report, gate))
    plot(report, paths[2])
    return paths
