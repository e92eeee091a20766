"""Train every task on synthetic data with a real budget; print held-out metrics and what it cost.

    nice .venv/bin/python bench/bench_training.py [--tasks classify,detect,segment,anomaly] [--samples 3000]
        [--input-size 128] [--epochs 10] [--held-out 500] [--seed 7] [--json] [--out DIR]

For each task: ``vision.training.train_model`` on ``--samples`` synthetic frames (5:4, at the input height),
then ``vision.evaluation.evaluate_artifact`` on ``--held-out`` frames the model never saw (same generator
seed, later frame indices), then ONNX export with its parity check and inference speed (ONNX Runtime, and
TensorFlow through a compiled ``tf.function``) at batch 1 and 32. Training time is reported as wall-clock
and as CPU seconds of this process: on a shared machine the CPU figure is the one to compare.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from schemas.vocabulary import Task

HEADLINE = {
    Task.CLASSIFICATION: ("accuracy", "macro_f1"),
    Task.DETECTION: ("map50", "map50_95"),
    Task.SEGMENTATION: ("mean_iou", "defect_iou", "defect_dice"),
    Task.ANOMALY: (),
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _images_per_second(run: Any, batch: np.ndarray, seconds: float = 3.0) -> float:
    run(batch)  # warm-up (graph build, allocations)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run(batch)
        done += len(batch)
    return done / (time.perf_counter() - started)


def _inference_speed(artifact: Path) -> dict[str, float]:
    import onnxruntime as ort
    import tensorflow as tf

    from vision.artifact import load_metadata
    from vision.export import INPUT_NAME
    from vision.nets.build import load_keras_model

    metadata = load_metadata(artifact)
    shape = metadata.preprocess.input_shape
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(artifact / "model.onnx"), options, providers=["CPUExecutionProvider"])
    model = load_keras_model(artifact / "model.keras")
    compiled = tf.function(lambda x: model(x, training=False))
    figures = {}
    for batch_size in (1, 32):
        batch = np.random.default_rng(0).random((batch_size, *shape), dtype=np.float32)
        figures[f"onnx_b{batch_size}_img_s"] = _images_per_second(
            lambda b: session.run(None, {INPUT_NAME: b}), batch
        )
        figures[f"tf_b{batch_size}_img_s"] = _images_per_second(lambda b: compiled(tf.constant(b)), batch)
    return figures


def bench_task(task: Task, args: argparse.Namespace, out_root: Path) -> dict[str, Any]:
    from vision.evaluation import evaluate_artifact
    from vision.export import export_onnx
    from vision.synthetic import synthetic_dataset
    from vision.training import TrainConfig, train_model

    height = args.input_size
    frames = {"width": height * 5 // 4, "height": height, "seed": args.seed}
    dataset = synthetic_dataset(args.samples, task, **frames)
    held_out = synthetic_dataset(args.held_out, task, start_index=args.samples, **frames)
    config = TrainConfig(
        task=task,
        input_width=args.input_size,
        input_height=args.input_size,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        progress=not args.json,
    )
    cpu_before = _cpu_seconds()
    result = train_model(dataset, config, out_root / task.value)
    cpu_training = _cpu_seconds() - cpu_before
    _, evaluation = evaluate_artifact(result.artifact, held_out, backend="keras")
    export = export_onnx(result.artifact)
    metrics = evaluation.metrics
    return {
        "task": task.value,
        "train_images": result.metadata.training.samples if result.metadata.training else None,
        "epochs_run": result.metadata.training.epochs if result.metadata.training else None,
        "parameters": result.metadata.parameters,
        "train_wall_s": round(result.duration_s, 1),
        "train_cpu_s": round(cpu_training, 1),
        "held_out_images": len(held_out),
        "held_out": {
            **{k: metrics[k] for k in HEADLINE[task] if isinstance(metrics.get(k), float)},
            # Every task is also a defect/good gate: AUROC of the image-level defect score.
            "defect_auroc": metrics.get("defect_vs_good", {}).get("auroc"),
        },
        "onnx_max_abs_diff": export.max_abs_diff,
        "onnx_mb": round(export.size_bytes / 1e6, 2),
        **{k: round(v, 1) for k, v in _inference_speed(result.artifact).items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="classify,detect,segment,anomaly")
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--held-out", type=int, default=500)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="keep the artifacts here (default: temporary)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    tasks = [Task(name.strip()) for name in args.tasks.split(",") if name.strip()]

    with tempfile.TemporaryDirectory(prefix="lineguard-bench-") as scratch:
        out_root = args.out or Path(scratch)
        rows = [bench_task(task, args, out_root) for task in tasks]
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "out")},
        "results": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for row in rows:
        held = ", ".join(f"{k} {v:.3f}" for k, v in row["held_out"].items() if v is not None)
        print(
            f"{row['task']:9s} {row['train_images']} imgs x {row['epochs_run']} epochs: "
            f"{row['train_wall_s']:.0f} s wall / {row['train_cpu_s']:.0f} s CPU | "
            f"held-out ({row['held_out_images']}): "
            f"{held} | ONNX diff {row['onnx_max_abs_diff']:.1e}, {row['onnx_mb']} MB | img/s ONNX b1 "
            f"{row['onnx_b1_img_s']:.0f} b32 {row['onnx_b32_img_s']:.0f}, TF b1 {row['tf_b1_img_s']:.0f} "
            f"b32 {row['tf_b32_img_s']:.0f}"
        )


if __name__ == "__main__":
    main()
