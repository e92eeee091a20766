"""``lineguard shadow run`` and ``lineguard shadow report``.

``run`` starts the candidate as a shadow worker: the production worker's settings (``LINEGUARD_WORKER_*``)
with its own group, the shadow results topic and the shadow collection. Live by default; with ``--from/--to``
(record times) or ``--from-offset/--to-offset`` it replays that range and exits once every record in it is
inspected, printing a JSON summary.

``report`` compares the candidate's shadow documents with production's and the reviewers' labels, writes
``report.json``, ``report.md`` and ``scores.png``, and stores one gate summary per line with the model
registry for ``lineguard models promote``.

Settings, clients and the model runtimes are imported inside the commands: ``lineguard shadow run --help``
loads Typer and little else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.endpoints import resolve_endpoints
from schemas.errors import ConfigurationError
from workers.shadow.render import write_report
from workers.shadow.replay import RangeRequest, resolve_range

if TYPE_CHECKING:  # at run time the commands import it: pydantic-settings costs `shadow --help` 80 ms
    from vision.registry import ModelRegistry

shadow_app = typer.Typer(
    help="Run a candidate model in shadow beside production, and compare it.", no_args_is_help=True
)

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="LINEGUARD_MODEL_REGISTRY_LOCATION",
        help="model registry: directory, mongodb:// URI, or 'mongodb' for the local stack",
    ),
]


def _time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{name} {text!r} is not an ISO time (e.g. 2026-12-03T07:00:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _registry(location: str | None) -> ModelRegistry:
    from vision.data_cli import open_cli_registry  # the models commands' own --registry resolution

    return open_cli_registry(location)


@shadow_app.command("run")
def shadow_run(
    model: Annotated[
        str,
        typer.Option(
            "--model", envvar="LINEGUARD_SHADOW_MODEL", help="candidate model name (in the registry)"
        ),
    ],
    version: Annotated[
        str, typer.Option("--version", envvar="LINEGUARD_SHADOW_VERSION", help="candidate version")
    ],
    registry: RegistryOption = None,
    line: Annotated[
        str | None, typer.Option("--line", envvar="LINEGUARD_SHADOW_LINE", help="only frames of this line")
    ] = None,
    camera: Annotated[
        str | None,
        typer.Option("--camera", envvar="LINEGUARD_SHADOW_CAMERA", help="only frames of this camera"),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option("--topic", envvar="LINEGUARD_SHADOW_TOPIC", help="frames topic (default: the worker's)"),
    ] = None,
    since: Annotated[str | None, typer.Option("--from", help="replay from this record time (ISO)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="replay up to this record time (ISO)")] = None,
    from_offset: Annotated[
        int | None, typer.Option("--from-offset", min=0, help="replay from offset")
    ] = None,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", min=0, help="replay to offset (excl.)")
    ] = None,
    partition: Annotated[
        list[int] | None, typer.Option("--partition", help="only these (repeatable)")
    ] = None,
    collection: Annotated[
        str,
        typer.Option("--collection", envvar="LINEGUARD_SHADOW_COLLECTION", help="shadow MongoDB collection"),
    ] = "shadow_inspections",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", envvar="LINEGUARD_SHADOW_METRICS_PORT", help="Prometheus, role=shadow"
        ),
    ] = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", min=1, help="longest a replay may take")
    ] = 3600.0,
    sample_every: Annotated[
        int,
        typer.Option(
            "--sample-every",
            min=1,
            envvar="LINEGUARD_SHADOW_SAMPLE_EVERY",
            help="inspect one record in N (bounds the shadow's CPU)",
        ),
    ] = 1,
    decode_threads: Annotated[
        int | None,
        typer.Option(
            "--decode-threads",
            min=1,
            envvar="LINEGUARD_SHADOW_DECODE_THREADS",
            help="default: the worker's setting",
        ),
    ] = None,
    inference_threads: Annotated[
        int | None,
        typer.Option(
            "--inference-threads",
            min=1,
            envvar="LINEGUARD_SHADOW_INFERENCE_THREADS",
            help="default: the worker's setting",
        ),
    ] = None,
) -> None:
    """Run the candidate as a shadow worker: live, or over a recorded range (--from/--to, offsets)."""
    from workers.settings import WorkerSettings
    from workers.shadow.config import resolve_candidate, shadow_group, shadow_settings
    from workers.shadow.run import ShadowTarget, run_live, run_replay

    since_at, until_at = _time(since, "--from"), _time(until, "--to")
    replaying = any(v is not None for v in (since_at, until_at, from_offset, to_offset)) or bool(partition)
    request = (
        RangeRequest(since_at, until_at, from_offset, to_offset, tuple(partition) if partition else None)
        if replaying
        else None
    )
    store = _registry(registry)
    candidate = resolve_candidate(store, model, version, line)
    base = WorkerSettings()
    if topic is not None:
        base = base.model_copy(update={"frames_topic": topic})
    tuning = {
        "metrics_port": metrics_port,
        "decode_threads": decode_threads,
        "inference_threads": inference_threads,
    }
    base = base.model_copy(update={k: v for k, v in tuning.items() if v is not None})
    if request is None:  # live: from now on (a replay commits its own start offsets)
        base = base.model_copy(update={"auto_offset_reset": "latest"})
    settings = shadow_settings(
        base,
        candidate,
        shadow_group(model, version, replay=replaying),
        line=line,
        registry=registry if registry != "mongodb" else None,
        collection=collection,
    )
    target = ShadowTarget(line=line, camera=camera, replay=request, sample_every=sample_every)
    if request is None:
        raise typer.Exit(run_live(settings, target))
    outcome = run_replay(settings, target, timeout_s=timeout_s)
    typer.echo(json.dumps(outcome.to_dict(), indent=2))
    raise typer.Exit(outcome.exit_code)


@shadow_app.command("report")
def shadow_report(
    model: Annotated[str, typer.Option("--model", help="candidate model name")],
    version: Annotated[str, typer.Option("--version", help="candidate version")],
    out: Annotated[Path, typer.Option("--out", help="folder for report.json, report.md, scores.png")],
    line: Annotated[str | None, typer.Option("--line", help="only this line")] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="only this camera")] = None,
    since: Annotated[str | None, typer.Option("--from", help="frames captured from (ISO)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="frames captured before (ISO)")] = None,
    shadow_collection: Annotated[str, typer.Option("--shadow-collection")] = "shadow_inspections",
    collection: Annotated[str, typer.Option("--collection", help="production inspections")] = "inspections",
    labels_collection: Annotated[str, typer.Option("--labels-collection")] = "labels",
    registry: RegistryOption = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="store the gate summaries with the registry")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the report JSON")] = False,
) -> None:
    """Compare the candidate with production (and labels) per line and class; feeds the promotion gate."""
    from pymongo import MongoClient

    from infra.settings import MongoSettings
    from vision.shadow_gate import GatePolicy, ShadowReportStore, check_gate, gate_summary
    from workers.shadow.report import ReportQuery, build_report

    query = ReportQuery(
        model=model,
        version=version,
        line=line,
        camera=camera,
        since=_time(since, "--from"),
        until=_time(until, "--to"),
        shadow_collection=shadow_collection,
        production_collection=collection,
        labels_collection=labels_collection,
    )
    settings = MongoSettings()
    uri = settings.uri.get_secret_value() if settings.uri is not None else resolve_endpoints().mongodb_uri
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        report = build_report(client[settings.database], query)
    finally:
        client.close()
    if report["frames"]["shadow"] == 0:
        raise ConfigurationError(
            f"no shadow results of {model} {version} in {settings.database}.{shadow_collection} for this "
            "selection (run `lineguard shadow run` first, or check --line/--from/--to)"
        )
    policy = GatePolicy()
    gate: dict[str, str] = {}
    summaries = [gate_summary(report, name, policy) for name in report["comparison"]["lines"]]
    for summary in summaries:
        decision = check_gate(summary, model, version, summary["line"], policy)
        gate[summary["line"]] = ("would pass: " if decision.allowed else "would refuse: ") + decision.reason
    if record:
        store = ShadowReportStore(_registry(registry))
        for summary in summaries:
            store.put(summary)
    paths = write_report(report, out, gate)
    if as_json:
        typer.echo(json.dumps({**report, "gate": gate}, indent=2, sort_keys=True))
        return
    typer.echo(
        f"shadow report {report['report_id']}: {report['frames']['compared']} frames compared, "
        f"{report['frames']['disagreeing']} disagreeing; wrote {', '.join(str(p) for p in paths)}"
    )
    for name, verdict in sorted(gate.items()):
        typer.echo(f"  line {name}: {verdict}")


@shadow_app.command("golden")
def shadow_golden(
    frames: Annotated[Path, typer.Option("--frames", help="golden folder: <OK|UNCERTAIN|DEFECT>/<image>")],
    model: Annotated[str | None, typer.Option("--model", help="model name in the registry")] = None,
    version: Annotated[str | None, typer.Option("--version", help="version in the registry")] = None,
    artifact: Annotated[Path | None, typer.Option("--artifact", help="or a local artifact folder")] = None,
    registry: RegistryOption = None,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, help="max |onnx - keras| score")] = 5e-3,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="keep the parity result for the promotion gate")
    ] = True,
    out: Annotated[Path | None, typer.Option("--out", help="write golden.json here")] = None,
) -> None:
    """Replay golden frames through an artifact: verdict diffs and Keras-vs-ONNX parity; exit 1 on either."""
    from vision.shadow_gate import ShadowReportStore
    from workers.shadow.golden import golden_replay

    # The registry the artifact came from, where the gate reads the parity result.
    store: ModelRegistry | None = None
    if artifact is None:
        if model is None or version is None:
            raise ConfigurationError("pass --model and --version (from the registry) or --artifact DIR")
        store = _registry(registry)
        from workers.shadow.config import resolve_candidate

        artifact = resolve_candidate(store, model, version, None)
    result = golden_replay(artifact, frames, tolerance)
    result["checked_at"] = datetime.now(UTC).isoformat()
    if record and store is not None:
        ShadowReportStore(store).put_parity(
            {**result["parity"], **_identity(result), "checked_at": result["checked_at"]}
        )
    text = json.dumps(result, indent=2, sort_keys=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "golden.json").write_text(text + "\n")
    typer.echo(text)
    raise typer.Exit(0 if result["passed"] else 1)


def _identity(result: dict[str, Any]) -> dict[str, Any]:
    return {"model": result["model"], "version": result["version"], "frames": result["frames"]}


@shadow_app.command("drift")
def shadow_drift(
    reference: Annotated[Path, typer.Option("--reference", help="the model's training images (a folder)")],
    out: Annotated[Path, typer.Option("--out", help="folder for drift.json, drift.md, drift.prom")],
    topic: Annotated[str | None, typer.Option("--topic", help="frames topic (default: the worker's)")] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="only this camera")] = None,
    since: Annotated[str | None, typer.Option("--from", help="frames from this record time (ISO)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="frames before this record time (ISO)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="also compare this model's scores")] = None,
    version: Annotated[str | None, typer.Option("--version", help="its version")] = None,
    registry: RegistryOption = None,
    limit: Annotated[int, typer.Option("--reference-limit", min=1, help="reference images read")] = 2000,
) -> None:
    """Frame statistics (and scores) per camera against the training reference: PSI and KS."""
    from infra.endpoints import resolve_endpoints
    from infra.settings import KafkaSettings
    from workers.settings import WorkerSettings
    from workers.shadow.drift_watch import (
        drift_report,
        markdown,
        prometheus_text,
        range_frames,
        reference_images,
    )

    images = reference_images(reference, limit)
    loaded = None
    if model is not None or version is not None:
        if model is None or version is None:
            raise ConfigurationError("--model and --version go together")
        from workers.backends import load_model
        from workers.shadow.config import resolve_candidate

        loaded = load_model(resolve_candidate(_registry(registry), model, version, None), "auto", 1)
    frames_topic = topic or WorkerSettings().frames_topic
    config = KafkaSettings().client_config(resolve_endpoints().kafka_bootstrap)
    ranges = resolve_range(config, frames_topic, RangeRequest(_time(since, "--from"), _time(until, "--to")))
    report = drift_report(images, range_frames(config, frames_topic, ranges, camera), loaded)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "drift.md").write_text(markdown(report))
    (out / "drift.prom").write_text(prometheus_text(report))
    for name, entry in report["cameras"].items():
        shifted = [f for f, v in entry["features"].items() if v["level"] != "stable"]
        moved = f": {', '.join(shifted)}" if shifted else ""
        typer.echo(f"{name}: {entry['level']} ({entry['frames']} frames){moved}")
