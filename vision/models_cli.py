"""``lineguard models publish|fetch|list|promote|rollback`` and ``lineguard thresholds set|show``: the model
registry and the live decision thresholds from the command line.

Heavy imports (OpenCV, TensorFlow, ONNX Runtime, pymongo) happen inside the commands, so ``lineguard --help``
stays fast. User mistakes raise :class:`ConfigurationError`, which the root CLI turns into one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from vision.registry import ModelRegistry
from vision.cli_output import console

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
