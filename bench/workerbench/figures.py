"""The derived figures (ratios, the p99 bound), the goals and the text report of ``bench_workers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def derive(figures: dict[str, Any]) -> None:
    """Ratios and the latency bound from the measured figures.

    On a machine shared with other work the fps ratios compare phases run under different loads; the
    ``*_cpu`` ratios compare CPU time per frame instead, which the neighbours do not change (much): the
    pipeline's worker process against the in-process stage bound and the naive loop.
    """
    pipeline = figures.get("pipeline_fps")
    if pipeline and figures.get("stage_bound_fps"):
        figures["pipeline_over_stage_bound"] = pipeline / figures["stage_bound_fps"]
    if pipeline and figures.get("naive_fps"):
        figures["pipeline_over_naive"] = pipeline / figures["naive_fps"]
    if pipeline and figures.get("naive_keras_fps"):
        figures["pipeline_over_naive_keras"] = pipeline / figures["naive_keras_fps"]
    pipeline_cpu = figures.get("pipeline_cpu_ms_per_frame")
    if pipeline_cpu and figures.get("stage_cpu_ms_per_frame"):
        figures["pipeline_over_stage_bound_cpu"] = figures["stage_cpu_ms_per_frame"] / pipeline_cpu
    if pipeline_cpu and figures.get("naive_cpu_ms_per_frame"):
        figures["pipeline_over_naive_cpu"] = figures["naive_cpu_ms_per_frame"] / pipeline_cpu
    if "batch_inference_ms" in figures:
        figures["p99_bound_ms"] = figures["max_wait_ms"] + 2 * figures["batch_inference_ms"]


GOALS = (
    ("pipeline_over_stage_bound", ">=", 0.90),
    ("pipeline_over_naive", ">=", 10.0),
    ("peak_rss_mb", "<", 2_000.0),
)


def report(figures: dict[str, Any]) -> Iterator[str]:
    for key, value in figures.items():
        if key == "pipeline_cpu_cores" and isinstance(value, dict):
            yield f"{key:28s} " + ", ".join(f"{name} {cores:.2f}" for name, cores in value.items())
        elif key == "latency_by_load":
            for load, row in value.items():
                yield (
                    f"latency at {float(load):4.0%} load         {row['rate_fps']:,.1f} frames/s: "
                    f"p50 {row['p50']:,.0f} ms, p90 {row['p90']:,.0f} ms, p99 {row['p99']:,.0f} ms"
                )
                yield "    p50/p99 ms of " + ", ".join(
                    f"{name} {part['p50']:,.0f}/{part['p99']:,.0f}" for name, part in row["segments"].items()
                )
                cores = row["cpu_cores"].items()
                yield "    cores used: " + ", ".join(f"{name} {used:.2f}" for name, used in cores)
                if row.get("inspected"):
                    seen = row["inspected"]
                    yield (
                        f"    deadline: inspected {seen['frames']} frames, p50 {seen['p50'] or 0:,.0f} ms, "
                        f"p99 {seen['p99'] or 0:,.0f} ms; fail-safe share {row['fail_safe_share'] or 0:.1%}"
                    )
        elif isinstance(value, float):
            yield f"{key:28s} {value:,.2f}"
        else:
            yield f"{key:28s} {value}"
    for key, op, goal in GOALS:
        if figures.get(key) is not None:
            met = figures[key] >= goal if op == ">=" else figures[key] < goal
            yield f"goal {key} {op} {goal}: {'met' if met else 'MISSED'}"
    if figures.get("p99_ms") is not None and "p99_bound_ms" in figures:
        met = figures["p99_ms"] <= figures["p99_bound_ms"]
        yield (
            f"goal p99_ms <= max_wait_ms + 2 x batch inference = {figures['p99_bound_ms']:.0f} ms: "
            f"{'met' if met else 'MISSED'}"
        )
