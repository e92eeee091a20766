"""Benchmark the inference worker on one set of frames and one model (issue 4, "Benchmark").

    .venv/bin/python bench/bench_workers.py [--model DIR] [--quick] [--backlog 20000] [--json]

Kafka and MongoDB come from KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI or the running local stack. Frames are
synthetic 1280x1024 JPEGs (generated once, cached under <cache dir>/bench/); the model is the shipped default
unless --model names another artifact. Every phase uses its own topics and database, deleted afterwards.

Phases and the figures they give (``--json`` prints them as one object):

1. stage bound (``stage_bound_fps``): the worker's own decoder (Avro -> JPEG -> preprocess) on a thread pool
   of all cores, feeding the model in batches of ``max_batch_size`` on the main thread; no Kafka, no MongoDB.
   Also measured alone: decode-only frames/s, and the model's time for one full batch.
2. pipeline (``pipeline_fps``): a backlog already on the frames topic, drained by a ``python -m workers``
   subprocess through Kafka and MongoDB; the rate between its first and its last result.
3. naive (``naive_fps``): one message at a time in this process: consume one, decode, predict one frame
   with the worker's backend, ``insert_one``, commit synchronously; ``naive_*_ms`` splits the time per frame.
   ``naive_keras_fps`` is the same loop with Keras ``model.predict`` per frame (the usual first version).
4. latency (``p50_ms``, ``p99_ms``): frames published at 70 % of ``pipeline_fps`` to the same worker by a
   warmed-up producer; capture time to the result record's Kafka timestamp. Goal: p99 <= max_wait_ms + 2 x
   batch inference time (``p99_bound_ms``). ``--loads 0.3,0.5,0.7`` measures several loads
   (``latency_by_load``), each split by the result's own timestamps into ``to_worker`` (camera, Kafka,
   prefetch), ``in_worker`` (decode, batching, waiting for the model, the model) and ``to_output``.
   ``--deadline-ms 200`` runs this phase with a capture -> verdict deadline (``--fail-safe reject|pass``):
   each load then also gives ``inspected`` (p50/p99 of the frames the model inspected) and
   ``fail_safe_share`` (results decided fail-safe, ``deadline_missed``).
5. memory (``peak_rss_mb``): a fresh worker started against a backlog of ``--backlog`` frames (the distinct
   frames re-published); its peak RSS (VmHWM) while it works through the backlog for ``--rss-seconds``.

``pipeline_cpu_cores`` and each load's ``cpu_cores``: the cores used by the worker, the local stack's broker
and database and this process (publisher, watcher), which on a small machine all share the same cores.

Ratios: ``pipeline_over_stage_bound`` (goal >= 0.90), ``pipeline_over_naive`` (goal >= 10) and
``pipeline_over_naive_keras``. Figures on a
shared 2-core machine vary from run to run: read them with the other processes in mind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from workerbench.common import (  # noqa: E402
    LATENCY_LOAD,
    MAX_BATCH_SIZE,
    MAX_WAIT_MS,
    load_1m,
    say,
    sizes_for,
)
from workerbench.figures import derive, report  # noqa: E402
from workerbench.frames import FrameFactory, cached_frames, producer, publish_backlog  # noqa: E402
from workerbench.latency import pipeline_and_latency  # noqa: E402
from workerbench.memory import memory  # noqa: E402
from workerbench.naive import keras_predict_one, naive  # noqa: E402
from workerbench.stage import load_model, stage_bound  # noqa: E402
from workerbench.worker_process import process_cpu_s  # noqa: E402

from infra.settings import default_cache_dir  # noqa: E402
from lineguard.stack.endpoints import resolve_endpoints  # noqa: E402

# bench_scaleout.py and bench_shadow.py reuse these from here (``from bench_workers import ...``)
__all__ = ["FrameFactory", "cached_frames", "main", "process_cpu_s", "producer", "publish_backlog", "say"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model artifact (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in ~2 minutes")
    parser.add_argument("--backlog", type=int, default=0, help="frames for the memory phase (20000)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality (80: ~200 KB at 1280x1024)")
    parser.add_argument(
        "--phases",
        default="stage,pipeline,naive,memory",
        help="comma-separated subset of stage,pipeline,naive,memory",
    )
    parser.add_argument(
        "--no-keras", action="store_true", help="skip the naive run with Keras model.predict per frame"
    )
    parser.add_argument(
        "--loads",
        default=str(LATENCY_LOAD),
        help="fractions of pipeline_fps to measure latency at, e.g. 0.3,0.5,0.7 (p50_ms/p99_ms: at 0.7)",
    )
    parser.add_argument(
        "--deadline-ms", type=float, default=0.0, help="latency phase with this capture->verdict deadline"
    )
    parser.add_argument("--fail-safe", choices=("reject", "pass"), default="reject")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from workers.pipeline import default_model_path

    sizes = sizes_for(args)
    phases = set(args.phases.split(","))
    endpoints = resolve_endpoints()
    model_path = args.model if args.model is not None else default_model_path()
    log_dir = default_cache_dir() / "bench" / "logs"
    frames = cached_frames(sizes.distinct, args.width, args.height, args.quality)
    factory = FrameFactory(frames, args.width, args.height)
    model = load_model(model_path)
    meta = model.metadata
    figures: dict[str, Any] = {
        "model": f"{meta.name} {meta.version} ({meta.task.value}, {model.backend.name}, "
        f"input {meta.preprocess.width}x{meta.preprocess.height})",
        "frame_size": f"{args.width}x{args.height}",
        "frame_kb": sum(len(f.jpeg) for f in frames) / len(frames) / 1000,
        "max_batch_size": MAX_BATCH_SIZE,
        "max_wait_ms": MAX_WAIT_MS,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    if "stage" in phases:
        say(f"stage bound: {sizes.stage_frames} frames in process")
        load_before = load_1m()
        figures.update(stage_bound(model, factory, sizes.stage_frames))
        figures["load_during_stage"] = (load_before + load_1m()) / 2
    if "naive" in phases:
        say(f"naive: {sizes.naive_frames} frames one at a time")
        figures.update(naive(endpoints, model, factory, sizes.naive_frames))
        if meta.task.value == "classify" and meta.files.keras and not args.no_keras:
            say(f"naive with Keras model.predict per frame: {sizes.naive_keras_frames} frames")
            predict = keras_predict_one(model.path, meta)
            figures.update(
                naive(endpoints, model, factory, sizes.naive_keras_frames, predict, key="naive_keras")
            )
    del model  # the worker subprocesses need the cores and memory now
    if "pipeline" in phases:
        say(f"pipeline: {sizes.pipeline_frames} frames through Kafka, the worker and MongoDB")
        deadline_env = None
        if args.deadline_ms > 0:
            deadline_env = {
                "LINEGUARD_WORKER_DEADLINE_MS": str(args.deadline_ms),
                "LINEGUARD_WORKER_DEADLINE_FAIL_SAFE": args.fail_safe,
            }
        figures.update(pipeline_and_latency(endpoints, model_path, factory, sizes, log_dir, deadline_env))
    if "memory" in phases:
        say(f"memory: a worker against a backlog of {sizes.backlog} frames")
        figures.update(memory(endpoints, model_path, factory, sizes, log_dir))
    derive(figures)
    return figures


def main() -> None:
    args = parse_args()
    figures = run(args)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for line in report(figures):
            print(line)


if __name__ == "__main__":
    main()
