"""CLI commands of the data and versions side of the vision team: ``lineguard evaluate``,
``lineguard dataset check|clean|export``, ``lineguard models list|promote|rollback`` and
``lineguard thresholds set|show``.

Heavy imports (OpenCV, TensorFlow, ONNX Runtime, pymongo) happen inside the commands, so ``lineguard --help``
stays fast. User mistakes raise :class:`ConfigurationError`, which the root CLI turns into one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

console = Console(stderr=True)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


# ------------------------------------------------------------------------------------------ evaluate


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", help="model artifact directory (with model.json)")],
    data: Annotated[Path, typer.Option("--data", help="labelled dataset folder (or COCO JSON file)")],
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
) -> None:
    """Measure a model artifact on labelled data: metrics JSON plus a report with plots."""
    from schemas.errors import ConfigurationError
    from vision.artifact import load_metadata
    from vision.datasets import load_dataset
    from vision.evaluation import evaluate_artifact
    from vision.report import write_report

    if backend not in ("auto", "onnx", "keras"):
        raise ConfigurationError(f"unknown backend {backend!r}: choose auto, onnx or keras")
    metadata = load_metadata(model)
    dataset = load_dataset(data, metadata.task, None if fmt == "auto" else fmt)
    with _progress() as progress:
        task = progress.add_task(f"evaluating {metadata.name} {metadata.version}", total=len(dataset))
        metadata, evaluation = evaluate_artifact(
            model,
            dataset,
            batch_size=batch_size,
            backend=backend,
            false_reject_rate=false_reject_rate,
            on_batch=lambda n: progress.advance(task, n),
        )
    files = write_report(out, metadata, evaluation)
    _print_headline(evaluation.metrics)
    console.print(f"wrote {', '.join(str(f) for f in files)}")


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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``lineguard`` app."""
    app.command("evaluate")(evaluate_command)
