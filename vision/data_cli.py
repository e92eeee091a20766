"""CLI commands of the data and versions side of the vision team: ``lineguard evaluate``,
``lineguard dataset check|clean|export``, ``lineguard models list|promote|rollback`` and
``lineguard thresholds set|show``.

Heavy imports (OpenCV, TensorFlow, ONNX Runtime, pymongo) happen inside the commands, so ``lineguard --help``
stays fast. User mistakes raise :class:`ConfigurationError`, which the root CLI turns into one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress

if TYPE_CHECKING:
    from vision.curation import CurationReport, Finding
    from vision.datasets import DatasetFormat

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


# ------------------------------------------------------------------------------------------ dataset

dataset_app = typer.Typer(help="Check, clean and export training data.", no_args_is_help=True)

FormatOption = Annotated[str, typer.Option("--format", help="folder, voc, coco, masks, goodonly or auto")]


def _dataset_format(fmt: str) -> DatasetFormat | None:
    from vision.datasets import DatasetFormat

    if fmt == "auto":
        return None
    try:
        return DatasetFormat(fmt)
    except ValueError:
        from schemas.errors import ConfigurationError

        choices = ", ".join(f.value for f in DatasetFormat)
        raise ConfigurationError(f"unknown dataset format {fmt!r}: choose one of {choices} or auto") from None


def _scan(path: Path, fmt: str, near_distance: int) -> CurationReport:
    from vision.curation import CheckConfig, check_dataset

    with _progress() as progress:
        task = progress.add_task(f"checking {path}", total=None)
        return check_dataset(
            path,
            _dataset_format(fmt),
            CheckConfig(near_duplicate_distance=near_distance),
            on_image=lambda n: progress.advance(task, n),
            on_start=lambda total: progress.update(task, total=total),
        )


def _print_findings(report: CurationReport, limit: int = 3) -> None:
    from rich.table import Table

    table = Table(
        title=f"{report.root}: {report.images} images ({report.format}), classes {report.class_counts}"
    )
    for column in ("severity", "problem", "count", "examples"):
        table.add_column(column)
    colours = {"error": "red", "warning": "yellow", "info": "cyan"}
    grouped: dict[tuple[str, str], list[Finding]] = {}
    for finding in report.findings:
        grouped.setdefault((finding.severity.value, finding.kind), []).append(finding)
    order = {"error": 0, "warning": 1, "info": 2}
    for (severity, kind), findings in sorted(grouped.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        examples = "; ".join(
            ": ".join(part for part in (", ".join(f.paths[:3]), f.detail) if part) for f in findings[:limit]
        )
        table.add_row(f"[{colours[severity]}]{severity}[/]", kind, str(len(findings)), examples)
    if not report.findings:
        table.add_row("[green]ok[/]", "no problems found", "0", "")
    console.print(table)


@dataset_app.command("check")
def dataset_check(
    path: Annotated[Path, typer.Argument(help="dataset folder (or COCO JSON file)")],
    fmt: FormatOption = "auto",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the report as JSON here")
    ] = None,
    near_distance: Annotated[
        int, typer.Option("--near-distance", min=0, max=32, help="near-duplicate bits")
    ] = 4,
) -> None:
    """Report corrupt files, duplicates, blur, exposure, label problems and class imbalance.

    Exits 1 when an error-level problem was found, so it can gate a training job.
    """
    import json

    report = _scan(path, fmt, near_distance)
    _print_findings(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_out}")
    if report.has_errors:
        raise typer.Exit(1)


@dataset_app.command("clean")
def dataset_clean(
    path: Annotated[Path, typer.Argument(help="dataset folder (or COCO JSON file)")],
    fmt: FormatOption = "auto",
    kinds: Annotated[
        str,
        typer.Option(
            "--kinds",
            help="comma-separated problems to quarantine: corrupt, truncated, exact_duplicate, "
            "near_duplicate, blurry, underexposed, overexposed, conflicting_labels, or all",
        ),
    ] = "corrupt,truncated,exact_duplicate",
    quarantine_dir: Annotated[
        Path | None,
        typer.Option("--quarantine", help="where to move files (default PATH/_quarantine/<time>)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would move")] = False,
    near_distance: Annotated[int, typer.Option("--near-distance", min=0, max=32)] = 4,
) -> None:
    """Move problem images (and their annotation files) into a quarantine folder with a manifest. Nothing is
    deleted; `lineguard dataset restore DIR` puts them back."""
    from vision.curation import CLEANABLE_KINDS, quarantine

    chosen = sorted(CLEANABLE_KINDS) if kinds.strip() == "all" else [k.strip() for k in kinds.split(",") if k]
    report = _scan(path, fmt, near_distance)
    target, moves = quarantine(report, chosen, quarantine_dir, dry_run=dry_run)
    verb = "would move" if dry_run else "moved"
    for move in moves:
        console.print(f"{verb} {move.original} -> {target / move.quarantined}  ({move.kind})")
    if moves and not dry_run:
        console.print(f"{len(moves)} files quarantined; manifest: {target / 'manifest.json'}")
    elif not moves:
        console.print("nothing to quarantine")


@dataset_app.command("restore")
def dataset_restore(
    quarantine_dir: Annotated[Path, typer.Argument(help="a quarantine folder written by `dataset clean`")],
) -> None:
    """Put quarantined files back where they came from."""
    from vision.curation import restore

    restored = restore(quarantine_dir)
    console.print(f"restored {len(restored)} files")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``lineguard`` app."""
    app.command("evaluate")(evaluate_command)
    app.add_typer(dataset_app, name="dataset")
