"""``lineguard dataset check|clean|restore|export``: curation findings, quarantine, and dataset export.

Heavy imports (OpenCV, TensorFlow, ONNX Runtime, pymongo) happen inside the commands, so ``lineguard --help``
stays fast. User mistakes raise :class:`ConfigurationError`, which the root CLI turns into one line, exit 2.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from vision.curation import CheckConfig, CurationReport, Finding
    from vision.datasets import DatasetFormat
from vision.cli_output import console, progress_bar

dataset_app = typer.Typer(help="Check, clean and export training data.", no_args_is_help=True)

FormatOption = Annotated[str, typer.Option("--format", help="folder, voc, coco, masks, goodonly or auto")]
NearOption = Annotated[int, typer.Option("--near-distance", min=0, max=32, help="near-duplicate bits of 64")]
BlurOption = Annotated[
    float,
    typer.Option("--blur-relative", min=0.0, max=1.0, help="blurred below this share of the class median"),
]
DarkOption = Annotated[
    float, typer.Option("--dark-mean", min=0.0, max=255.0, help="underexposed below this mean")
]
BrightOption = Annotated[
    float, typer.Option("--bright-mean", min=0.0, max=255.0, help="overexposed above this mean")
]
MinClassOption = Annotated[int, typer.Option("--min-class-images", min=0, help="fewer is a rare class")]


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


def _scan(path: Path, fmt: str, config: CheckConfig) -> CurationReport:
    from vision.curation import check_dataset

    with progress_bar() as progress:
        task = progress.add_task(f"checking {path}", total=None)
        return check_dataset(
            path,
            _dataset_format(fmt),
            config,
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
        Path | None, typer.Option("--json-out", help="also write the report as JSON here")
    ] = None,
    near_distance: NearOption = 4,
    blur_relative: BlurOption = 0.2,
    dark_mean: DarkOption = 25.0,
    bright_mean: BrightOption = 230.0,
    min_class_images: MinClassOption = 10,
) -> None:
    """Report corrupt files, duplicates, blur, exposure, label problems and class imbalance.

    Exits 1 when an error-level problem was found, so it can gate a training job.
    """
    import json

    from vision.curation import CheckConfig

    config = CheckConfig(
        near_duplicate_distance=near_distance,
        blur_relative=blur_relative,
        dark_mean=dark_mean,
        bright_mean=bright_mean,
        min_class_images=min_class_images,
    )
    report = _scan(path, fmt, config)
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
    near_distance: NearOption = 4,
    blur_relative: BlurOption = 0.2,
    dark_mean: DarkOption = 25.0,
    bright_mean: BrightOption = 230.0,
) -> None:
    """Move problem images (and their annotation files) into a quarantine folder with a manifest. Nothing is
    deleted; `lineguard dataset restore DIR` puts them back."""
    from vision.curation import CLEANABLE_KINDS, CheckConfig, quarantine

    chosen = sorted(CLEANABLE_KINDS) if kinds.strip() == "all" else [k.strip() for k in kinds.split(",") if k]
    config = CheckConfig(
        near_duplicate_distance=near_distance,
        blur_relative=blur_relative,
        dark_mean=dark_mean,
        bright_mean=bright_mean,
    )
    report = _scan(path, fmt, config)
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


@dataset_app.command("export")
def dataset_export(
    out: Annotated[Path, typer.Option("--out", help="training folder to write (folder-per-class)")],
    results_from: Annotated[
        str, typer.Option("--from", help="where results come from: mongodb or topic")
    ] = "mongodb",
    topic_prefix: Annotated[
        str | None, typer.Option("--topic-prefix", help="deployment prefix of the topic names")
    ] = None,
    collection: Annotated[str, typer.Option("--collection", help="inspection documents")] = "inspections",
    labels_collection: Annotated[
        str, typer.Option("--labels-collection", help="corrected labels")
    ] = "labels",
    line: Annotated[str | None, typer.Option("--line", help="only this line")] = None,
    model: Annotated[str | None, typer.Option("--model", help="only results of this model")] = None,
    model_version: Annotated[str | None, typer.Option("--model-version")] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="captured at or after (UTC if naive)")
    ] = None,
    until: Annotated[datetime | None, typer.Option("--until", help="captured before (UTC if naive)")] = None,
    include_uncertain: Annotated[
        bool, typer.Option("--include-uncertain", help="also export UNCERTAIN frames, as class 'uncertain'")
    ] = False,
    layout: Annotated[
        str, typer.Option("--layout", help="folder (<label>/<image>) or voc (JPEGImages/ + Annotations/)")
    ] = "folder",
    min_box_score: Annotated[
        float, typer.Option("--min-box-score", min=0.0, max=1.0, help="voc: model detections kept as boxes")
    ] = 0.5,
) -> None:
    """Pull production frames with their results (and corrected labels) into a training folder."""
    import json

    from infra.endpoints import resolve_endpoints
    from infra.settings import KafkaSettings, MongoSettings, RegistrySettings
    from schemas.errors import ConfigurationError
    from schemas.serde import schema_registry_client
    from schemas.topics import TopicNames
    from vision.export_dataset import ExportFilter, ExportLayout, ExportSources, run_export

    if layout not in {member.value for member in ExportLayout}:
        raise ConfigurationError(f"unknown layout {layout!r}: choose folder or voc")

    endpoints = resolve_endpoints()
    mongo = MongoSettings()
    registry = RegistrySettings()
    topics = TopicNames.with_prefix(topic_prefix) if topic_prefix else TopicNames()
    sources = ExportSources(
        kafka_config=KafkaSettings().client_config(endpoints.kafka_bootstrap),
        frames_topic=topics.frames,
        results_topic=topics.results,
        mongodb_uri=endpoints.mongodb_uri,
        database=mongo.database,
        collection=collection,
        labels_collection=labels_collection,
        schema_registry=schema_registry_client(
            registry.url,
            registry.basic_auth_user_info.get_secret_value() if registry.basic_auth_user_info else None,
        ),
    )
    selection = ExportFilter(
        line=line,
        model=model,
        model_version=model_version,
        since=_utc(since),
        until=_utc(until),
        include_uncertain=include_uncertain,
        min_box_score=min_box_score,
    )
    with progress_bar() as progress:
        task = progress.add_task(f"exporting {topics.frames}", total=None)
        summary = run_export(
            sources,
            out,
            results_from,
            selection,
            on_frame=lambda: progress.advance(task),
            layout=ExportLayout(layout),
        )
    console.print_json(json.dumps(summary.to_dict()))
    console.print(f"wrote {sum(summary.written.values())} images to {out}")


def _utc(moment: datetime | None) -> datetime | None:
    from datetime import UTC

    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
