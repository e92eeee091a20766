"""The worker benchmark's fixed settings, phase sizes (``--quick`` or full) and ``--loads`` parsing."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the worker subprocesses run from here

CAMERAS = ("bench-cam-1", "bench-cam-2", "bench-cam-3")
PARTITIONS = 3
MAX_BATCH_SIZE = 32
MAX_WAIT_MS = 20.0


@dataclass(frozen=True, slots=True)
class Sizes:
    distinct: int  # distinct encoded frames (generated once, cached)
    stage_frames: int  # frames through the in-process stage bound
    pipeline_frames: int  # backlog drained by the worker for pipeline_fps
    naive_frames: int
    naive_keras_frames: int
    latency_s: float  # publishing time at each load
    backlog: int  # frames for the memory phase
    rss_s: float  # how long the memory phase watches the worker
    loads: tuple[float, ...] = (0.7,)  # fractions of pipeline_fps to publish at for latency


def sizes_for(args: argparse.Namespace) -> Sizes:
    loads = _loads(args.loads)
    if args.quick:
        return Sizes(40, 160, 400, 40, 20, 10.0, args.backlog or 2_000, 20.0, loads)
    return Sizes(200, 600, 2_000, 150, 60, 40.0, args.backlog or 20_000, 60.0, loads)


LATENCY_LOAD = 0.7  # the load for p50_ms / p99_ms


def _loads(text: str) -> tuple[float, ...]:
    try:
        loads = tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise SystemExit(f"--loads: expected fractions like 0.3,0.7, got {text!r}") from None
    if not loads or not all(0 < load <= 1.5 for load in loads):
        raise SystemExit(f"--loads: fractions of pipeline_fps within (0, 1.5], got {text!r}")
    return loads


def percentages(loads: tuple[float, ...]) -> str:
    return ", ".join(f"{load:.0%}" for load in loads)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_1m() -> float:
    """The 1-minute load average: how busy the (shared) machine was while a phase ran."""
    return os.getloadavg()[0]
