"""The demo on a terminal: a live table while it runs and a summary when it ends (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lineguard.demo.run import LiveStatus


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f} %"


def live_table(status: LiveStatus) -> RenderableType:
    """One refresh of the live view."""
    s = status.snapshot
    table = Table(title=f"lineguard demo: {status.phase}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("elapsed", f"{status.elapsed_s:,.0f} s")
    table.add_row("frames published", f"{s.produced} / {status.frames_target}")
    table.add_row("results", f"{s.results}")
    table.add_row("results/s (last 5 s)", f"{s.results_per_s:.1f}")
    table.add_row("capture -> result p50", _ms(s.p50_ms))
    table.add_row("capture -> result p99", _ms(s.p99_ms))
    table.add_row("consumer lag", "-" if status.lag is None else str(status.lag))
    table.add_row("in flight", str(s.outstanding))
    verdicts = ", ".join(f"{name.lower()} {count}" for name, count in sorted(s.verdicts.items())) or "-"
    table.add_row("verdicts", verdicts)
    table.add_row("defect events", str(s.defect_events))
    table.add_row("dead letters", str(s.dead_letters))
    defects = Table(title="defects by class", title_justify="left")
    defects.add_column("class")
    defects.add_column("frames", justify="right")
    for name, count in s.defects_by_class.items():
        defects.add_row(name, str(count))
    if not s.defects_by_class:
        defects.add_row("-", "0")
    return Group(table, defects)


_SEGMENT_LABELS = {
    "to_worker": "  capture -> worker (p50 / p99)",
    "in_worker": "  worker -> inferred (p50 / p99)",
    "to_output": "  inferred -> result (p50 / p99)",
}


def _segment_rows(segments: dict[str, dict[str, float | None]]) -> list[tuple[str, str]]:
    """Where the latency went: camera and Kafka, decode/batching/model, writing the result."""
    return [
        (label, f"{_ms(segments[name]['p50'])} / {_ms(segments[name]['p99'])}")
        for name, label in _SEGMENT_LABELS.items()
        if name in segments
    ]


def summary_view(summary: dict[str, Any]) -> RenderableType:
    """The end-of-run summary: counts, latency, accuracy, and where the results are."""
    counts = Table(title="demo summary", title_justify="left", show_header=False)
    counts.add_column("what", style="bold")
    counts.add_column("value", justify="right")
    latency = summary["latency_ms"]
    for label, value in (
        ("stopped by", summary["stopped_by"]),
        ("duration", f"{summary['duration_s']} s"),
        ("frames published / delivered", f"{summary['produced']} / {summary['delivered']}"),
        ("results", summary["results"]),
        ("missing results", summary["missing_results"]),
        ("MongoDB documents", "-" if summary["mongodb_documents"] is None else summary["mongodb_documents"]),
        ("defect verdicts", summary["defects"]),
        ("defect events", summary["defect_events"]),
        ("dead letters", summary["dead_letters"]),
        ("throughput", f"{summary['throughput_fps']} results/s"),
        ("latency p50 / p99 / max", f"{_ms(latency['p50'])} / {_ms(latency['p99'])} / {_ms(latency['max'])}"),
        *_segment_rows(summary.get("latency_segments_ms", {})),
    ):
        counts.add_row(label, str(value))

    verdict = summary["accuracy"]["verdict"]
    scores = Table(title="defect verdict vs ground truth (uncertain counts as flagged)", title_justify="left")
    for column in ("frames", "accuracy", "precision", "recall", "F1", "TP", "FP", "TN", "FN"):
        scores.add_column(column, justify="right")
    scores.add_row(
        str(verdict["frames"]),
        _pct(verdict["accuracy"]),
        _pct(verdict["precision"]),
        _pct(verdict["recall"]),
        _pct(verdict["f1"]),
        *(
            str(verdict[key])
            for key in ("true_positive", "false_positive", "true_negative", "false_negative")
        ),
    )
    parts: list[RenderableType] = [counts, scores]

    classes = summary["accuracy"]["classes"]
    if classes is not None:
        per_class = Table(
            title=f"class accuracy {_pct(classes['accuracy'])} (macro F1 {_pct(classes['macro_f1'])})",
            title_justify="left",
        )
        for column in ("class", "precision", "recall", "support"):
            per_class.add_column(column, justify="right" if column != "class" else "left")
        for name, row in classes["per_class"].items():
            per_class.add_row(name, _pct(row["precision"]), _pct(row["recall"]), str(row["support"]))
        parts.append(per_class)

    where = summary["where"]
    topics = where["topics"]
    mongo = where["mongodb"]
    parts.append(
        Text.assemble(
            ("Results are in\n", "bold"),
            f"  Kafka {where['kafka']}: {topics['results']} (every frame), "
            f"{topics['defect_events']} (defects), "
            f"{topics['dead_letters']} (dead letters); frames on {topics['frames']}\n",
            f"  MongoDB: database {mongo['database']}, collection {mongo['collection']}\n",
            f"  model {summary['model']['name']} {summary['model']['version']} ({summary['model']['task']}) "
            f"from {summary['model']['path']}\n",
            f"  worker log: {summary['worker']['log']}",
            *(
                (f"\n  console: {where['console']['url']} (start it with: {where['console']['command']})",)
                if "console" in where
                else ()
            ),
        )
    )
    return Group(*parts)
