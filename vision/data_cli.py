"""CLI commands of the data and versions side of the vision team: ``lineguard evaluate``,
``lineguard dataset check|clean|export``, ``lineguard models list|promote|rollback`` and
``lineguard thresholds set|show``.

Heavy imports (OpenCV, TensorFlow, ONNX Runtime, pymongo) happen inside the commands, so ``lineguard --help``
stays fast. User mistakes raise :class:`ConfigurationError`, which the root CLI turns into one line, exit 2.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress

if TYPE_CHECKING:
    from vision.curation import CheckConfig, CurationReport, Finding
    from vision.datasets import DatasetFormat
    from vision.registry import ModelRegistry

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
    if "auroc" in defect:
        name = metrics.get("model", {}).get("name", "MODEL")
        console.print(
            f"to apply a calibrated threshold: lineguard thresholds set --model {name} --line LINE "
            f"--defect {defect['false_reject_threshold']['threshold']:.4f}"
        )


# ------------------------------------------------------------------------------------------ dataset

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

    with _progress() as progress:
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
    with _progress() as progress:
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


# ------------------------------------------------------------------------------------------ registry

models_app = typer.Typer(
    help="Publish model versions and move a line's production alias.", no_args_is_help=True
)
thresholds_app = typer.Typer(
    help="Decision thresholds per line or camera, read live by workers.", no_args_is_help=True
)

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="registry directory, a mongodb:// URI, or 'mongodb' for the local stack's MongoDB "
        "[env: LINEGUARD_MODEL_REGISTRY_LOCATION; default: ~/.cache/lineguard/registry]",
    ),
]


def open_cli_registry(location: str | None) -> ModelRegistry:
    """The registry a command's ``--registry`` names; 'mongodb' = the configured or local stack's MongoDB."""
    from infra.settings import MongoSettings
    from vision.registry import open_registry

    if location == "mongodb":
        uri = MongoSettings().uri
        if uri is not None:
            location = uri.get_secret_value()
        else:
            from infra.endpoints import resolve_endpoints

            location = resolve_endpoints().mongodb_uri
    return open_registry(location)


@models_app.command("publish")
def models_publish(
    artifact: Annotated[Path, typer.Argument(help="model artifact directory (with model.json)")],
    registry: RegistryOption = None,
) -> None:
    """Add an artifact to the registry under the name and version in its model.json."""
    store = open_cli_registry(registry)
    version = store.publish(artifact)
    console.print(f"published {version.name} {version.version} ({version.task}) to {store.location}")


@models_app.command("fetch")
def models_fetch(
    model: Annotated[str, typer.Option("--model", help="model name")],
    out: Annotated[Path, typer.Option("--out", help="folder to copy the artifact into (must not exist)")],
    version: Annotated[str | None, typer.Option("--version", help="default: production of --line")] = None,
    line: Annotated[str, typer.Option("--line", help="production line whose version to fetch")] = "*",
    registry: RegistryOption = None,
) -> None:
    """Copy a published artifact out of the registry, e.g. to evaluate the version a line runs."""
    import shutil

    from schemas.errors import ConfigurationError

    store = open_cli_registry(registry)
    if version is None:
        alias = store.current_production(line)
        if alias is None or alias.model != model:
            raise ConfigurationError(f"line {line} has no production version of {model}: pass --version")
        version = alias.version
    if out.exists():
        raise ConfigurationError(f"{out} already exists")
    shutil.copytree(
        store.fetch(model, version), out, ignore=shutil.ignore_patterns(".registry.json", ".sha256")
    )
    console.print(f"fetched {model} {version} into {out}")


@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Option("--model", help="only this model")] = None,
    history: Annotated[bool, typer.Option("--history", help="also show the alias history")] = False,
    registry: RegistryOption = None,
) -> None:
    """Published versions and which lines run them in production."""
    from rich.table import Table

    store = open_cli_registry(registry)
    production: dict[tuple[str, str], list[str]] = {}
    for alias in store.aliases():
        production.setdefault((alias.model, alias.version), []).append(alias.line)
    table = Table(title=f"models in {store.location}")
    for column in ("model", "version", "task", "created", "size", "production on"):
        table.add_column(column)
    for name in [model] if model else store.models():
        for v in store.versions(name):
            lines = ", ".join(sorted(production.get((v.name, v.version), [])))
            table.add_row(v.name, v.version, v.task, v.created_at[:19], f"{v.size_bytes / 1e6:.2f} MB", lines)
    console.print(table)
    if history:
        changes = Table(title="alias history")
        for column in ("at", "line", "action", "model", "version", "revision", "replaced", "reason"):
            changes.add_column(column)
        for c in store.history():
            changes.add_row(
                c.at[:19],
                c.line,
                c.action,
                c.model,
                c.version,
                str(c.revision),
                c.replaced or "",
                c.reason or "",
            )
        console.print(changes)


@models_app.command("promote")
def models_promote(
    model: Annotated[str, typer.Option("--model", help="model name")],
    version: Annotated[str, typer.Option("--version", help="published version")],
    line: Annotated[str, typer.Option("--line", help="production line ('*' = default of every line)")],
    registry: RegistryOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="skip the shadow gate (needs --reason, kept in the history)")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why, recorded in the alias history")] = None,
) -> None:
    """Make a published version the production model of a line; workers switch between batches.

    Gated: when the line already runs a model, the candidate's latest shadow report for the line must pass
    (`lineguard shadow report`; thresholds LINEGUARD_GATE_*), unless --force --reason TEXT."""
    from schemas.errors import ConfigurationError
    from vision.shadow_gate import GatePolicy, ShadowReportStore, check_gate

    store = open_cli_registry(registry)
    current = store.current_production(line)
    if force:
        if not reason or not reason.strip():
            raise ConfigurationError("--force needs --reason TEXT (it is kept in the alias history)")
        note = f"forced: {reason.strip()}"
    elif current is None or (current.model, current.version) == (model, version):
        note = reason or "first production model of the line (nothing to shadow against)"
    else:
        reports = ShadowReportStore(store)
        decision = check_gate(
            reports.latest(model, version, line),
            model,
            version,
            line,
            GatePolicy(),
            parity=reports.latest_parity(model, version),
        )
        if not decision.allowed:
            raise ConfigurationError(f"promotion refused: {decision.reason}")
        note = decision.reason if not reason else f"{decision.reason}; {reason}"
    alias = store.promote(line, model, version, reason=note)
    before = f" (was {alias.previous[0]} {alias.previous[1]})" if alias.previous else ""
    console.print(
        f"line {line}: production is now {alias.model} {alias.version}{before}, revision {alias.revision}"
    )


@models_app.command("rollback")
def models_rollback(
    line: Annotated[str, typer.Option("--line", help="production line")],
    registry: RegistryOption = None,
) -> None:
    """Return a line to its previous production version."""
    alias = open_cli_registry(registry).rollback(line)
    console.print(f"line {line}: rolled back to {alias.model} {alias.version}, revision {alias.revision}")


@thresholds_app.command("set")
def thresholds_set(
    model: Annotated[str, typer.Option("--model", help="model name")],
    line: Annotated[str, typer.Option("--line", help="production line ('*' = every line)")],
    defect: Annotated[float, typer.Option("--defect", min=0.0, help="score at or above: defect")],
    uncertain: Annotated[
        float | None,
        typer.Option(
            "--uncertain", min=0.0, help="at or above: held for review (default: 20% below --defect)"
        ),
    ] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="only this camera of the line")] = None,
    registry: RegistryOption = None,
) -> None:
    """Override a model's decision thresholds on a line or camera; running workers pick it up live."""
    from vision.thresholds import Thresholds, set_thresholds

    chosen = (
        Thresholds.with_band(defect) if uncertain is None else Thresholds(defect=defect, uncertain=uncertain)
    )
    entry = set_thresholds(open_cli_registry(registry), model, line, chosen, camera)
    where = f"line {entry.line}" + (f" camera {entry.camera}" if entry.camera else "")
    console.print(f"{model} on {where}: defect >= {chosen.defect:g}, uncertain >= {chosen.uncertain:g}")


@thresholds_app.command("show")
def thresholds_show(
    model: Annotated[str, typer.Option("--model", help="model name")],
    registry: RegistryOption = None,
) -> None:
    """List a model's threshold overrides (lines without one use the model's own thresholds)."""
    from rich.table import Table

    from vision.thresholds import list_thresholds

    table = Table(title=f"threshold overrides of {model}")
    for column in ("line", "camera", "defect", "uncertain", "updated"):
        table.add_column(column)
    for entry in list_thresholds(open_cli_registry(registry), model):
        t = entry.thresholds
        table.add_row(
            entry.line, entry.camera or "*", f"{t.defect:g}", f"{t.uncertain:g}", entry.updated_at[:19]
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``lineguard`` app."""
    app.command("evaluate")(evaluate_command)
    app.add_typer(dataset_app, name="dataset")
    from vision.model_import_cli import models_import

    models_app.command("import")(models_import)
    app.add_typer(models_app, name="models")
    app.add_typer(thresholds_app, name="thresholds")
