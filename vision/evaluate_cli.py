"""``lineguard evaluate``: measure a model artifact on labelled data (metrics JSON, plots, report).

Heavy imports (OpenCV, TensorFlow, ONNX Runtime, pymongo) happen inside the commands, so ``lineguard --help``
stays fast. User mistakes raise :class:`ConfigurationError`, which the root CLI turns into one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass
from vision.cli_output import console, progress_bar


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", help="model artifact directory (with model.json)")],
    data: Annotated[
        str, typer.Option("--data", help="labelled dataset folder (or COCO JSON file), or synthetic:N")
    ],
    fmt: Annotated[str, typer.Option("--format", help="folder, voc, coco, masks, goodonly or auto")] = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder for metrics.json, plots and report.md")] = Path(
        "evaluation"
    ),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    backend: Annotated[
        str, typer.Option("--backend", help="auto (ONNX when exported), onnx or keras")
    ] = "auto",
    false_reject_rate: Annotated[
        float,
        typer.Option("--false-reject-rate", min=0.0, max=1.0, help="target share of good parts rejected"),
    ] = 0.01,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="synthetic data: generator seed (default: the model's training seed)"),
    ] = None,
    start_index: Annotated[
        int | None,
        typer.Option(
            "--start-index", min=0, help="synthetic data: first frame (default: after the training frames)"
        ),
    ] = None,
    examples: Annotated[
        int,
        typer.Option(
            "--examples",
            min=0,
            help="pictures of the worst false rejects, escapes and task errors in the report (0: none)",
        ),
    ] = 8,
    synthetic_size: Annotated[
        str | None,
        typer.Option("--synthetic-size", help="synthetic frame WxH (default: 5:4 at the input height)"),
    ] = None,
) -> None:
    """Measure a model artifact on labelled data: metrics JSON plus a report with plots."""
    from schemas.errors import ConfigurationError
    from vision.artifact import load_metadata
    from vision.datasets import load_dataset
    from vision.evaluation import evaluate_artifact
    from vision.report import write_report
    from vision.train_cli import parse_size, parse_synthetic

    if backend not in ("auto", "onnx", "keras"):
        raise ConfigurationError(f"unknown backend {backend!r}: choose auto, onnx or keras")
    metadata = load_metadata(model)
    count = parse_synthetic(data)
    if count is not None:
        from vision.evaluation import held_out_synthetic_frames
        from vision.synthetic import synthetic_dataset

        height = metadata.preprocess.height
        width, height = parse_size(synthetic_size) if synthetic_size else (height * 5 // 4, height)
        default_seed, default_start = held_out_synthetic_frames(metadata)
        dataset = synthetic_dataset(
            count,
            metadata.task,
            width=width,
            height=height,
            channels=metadata.channels,
            seed=default_seed if seed is None else seed,
            start_index=default_start if start_index is None else start_index,
        )
    else:
        dataset = load_dataset(Path(data), metadata.task, None if fmt == "auto" else fmt)
    with progress_bar() as progress:
        task = progress.add_task(f"evaluating {metadata.name} {metadata.version}", total=len(dataset))
        metadata, evaluation = evaluate_artifact(
            model,
            dataset,
            batch_size=batch_size,
            backend=backend,
            false_reject_rate=false_reject_rate,
            on_batch=lambda n: progress.advance(task, n),
        )
    files = write_report(out, metadata, evaluation, examples)
    _print_headline(evaluation.metrics)
    pictures = [f for f in files if f.parent.name == "examples"]
    shown = [f for f in files if f not in pictures]
    console.print(f"wrote {', '.join(str(f) for f in shown)}")
    if pictures:
        console.print(f"and {len(pictures)} example pictures in {pictures[0].parent}")


def _print_headline(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="evaluation")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("accuracy", "macro_f1", "map50", "map50_95", "mean_iou", "mean_dice", "defect_iou"):
        if key in metrics:
            table.add_row(key, f"{metrics[key]:.4f}")
    defect = metrics.get("defect_vs_good", {})
    if "auroc" in defect:
        table.add_row("defect AUROC", f"{defect['auroc']:.4f}")
        table.add_row("max-F1 threshold", f"{defect['max_f1_threshold']['threshold']:.4f}")
        frr = defect["false_reject_threshold"]
        table.add_row(f"threshold @ FRR <= {frr['target_false_reject_rate']:g}", f"{frr['threshold']:.4f}")
    console.print(table)
    if "auroc" in defect:
        name = metrics.get("model", {}).get("name", "MODEL")
        console.print(
            f"to apply a calibrated threshold: lineguard thresholds set --model {name} --line LINE "
            f"--defect {defect['false_reject_threshold']['threshold']:.4f}"
        )
