"""The `lineguard` command. Each subcommand group lives next to the code it drives; this module only wires
them together, configures logging once and turns user mistakes into one clear line and exit code 2."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from infra.exits import run_cli
from infra.logs import LogFormat, configure_logging
from lineguard.env_check import warn_unknown_environment  # a static table: no heavy imports
from lineguard.lazy_commands import LazyModule, lazy_group

# Every subcommand, by the module that registers it. `lineguard --help` lists these names and help lines
# without importing the modules (see lineguard/lazy_commands.py); tests/unit/test_cli_lazy.py keeps the help
# lines equal to the commands' own. A new subcommand: add its module here.
COMMANDS = (
    LazyModule(
        "lineguard.stack.cli:app",
        "group",
        {"stack": "Start, stop and inspect the local Kafka + MongoDB stack."},
        groups=frozenset({"stack"}),
    ),
    LazyModule(
        "streams.cli:camera", "command", {"camera": "Publish camera frames to Kafka as Avro Frame records."}
    ),
    LazyModule(
        "vision.data_cli:register",
        "register",
        {
            "evaluate": "Measure a model artifact on labelled data: metrics JSON plus a report with plots.",
            "dataset": "Check, clean and export training data.",
            "models": "Publish model versions and move a line's production alias.",
            "thresholds": "Decision thresholds per line or camera, read live by workers.",
        },
        groups=frozenset({"dataset", "models", "thresholds"}),
    ),
    LazyModule(
        "vision.train_cli:train_command",
        "command",
        {"train": "Train a model from scratch and write a versioned artifact."},
    ),
    LazyModule(
        "vision.train_cli:export_command",
        "command",
        {"export": "Export an artifact's Keras model to ONNX and check that both give the same outputs."},
    ),
    LazyModule(
        "workers.cli:register",
        "register",
        {
            "worker": "Consume frames, run the model in dynamic batches, write results, defect events and "
            "MongoDB docs.",
            "dlq": "Inspect and replay dead letters.",
            "shadow": "Run a candidate model in shadow beside production, and compare it.",
        },
        groups=frozenset({"dlq", "shadow"}),
    ),
    LazyModule(
        "lineguard.demo.cli:register",
        "register",
        {
            "demo": "Run the whole system: a synthetic camera -> Kafka -> a worker -> results, events and "
            "MongoDB."
        },
    ),
    LazyModule(
        "lineguard.lag.cli:register",
        "register",
        {
            "lag": "Export the frames topic's consumer lag (records and seconds, per partition and line) for "
            "Prometheus."
        },
    ),
    LazyModule(
        "lineguard.tail.cli:register",
        "register",
        {
            "tail": "Print a topic's records as JSON lines (either wire format), with Kafka coordinates and "
            "headers."
        },
    ),
    LazyModule(
        "lineguard.console.cli:register",
        "register",
        {"console": "The inspection console: live defects, frame viewer and review queue (a web app)."},
        groups=frozenset({"console"}),
    ),
    LazyModule(
        "parts.cli:register",
        "register",
        {
            "parts": "Join the verdicts of every view of a part into one decision (part-decisions topic, "
            "MongoDB `parts`).",
            "plc": "Hand part decisions to the line's PLC over OPC UA (request/acknowledge handshake, once "
            "per part), or with `transport: mqtt` in the config to an MQTT broker (Sparkplug-style topics, "
            "QoS 1, retained state).",
        },
    ),
    LazyModule(
        "quality.cli:report_command",
        "command",
        {
            "report": "Yield, first-pass yield, defect Pareto, shifts, lots, trends, SPC p-chart and model "
            "health."
        },
    ),
    LazyModule(
        "mes.cli:app", "group", {"sink": "Sinks that consume the results topic."}, groups=frozenset({"sink"})
    ),
    LazyModule(
        "lineguard.claimcheck.cli:app",
        "group",
        {"claimcheck": "Keep the claim-check store (GridFS) bounded by the frames topic's retention."},
        groups=frozenset({"claimcheck"}),
    ),
    LazyModule(
        "quality.counters.cli:app",
        "group",
        {"counters": "Live counters per line and window (Redis), from the results topic."},
        groups=frozenset({"counters"}),
    ),
)

app = typer.Typer(
    cls=lazy_group(COMMANDS),
    name="lineguard",
    help="Streaming defect detection for factory production lines: cameras -> Kafka -> vision models -> "
    "results, defect events and MongoDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"lineguard {version('lineguard')}")
        except PackageNotFoundError:  # a source tree that was never installed
            typer.echo("lineguard (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="LINEGUARD_LOG_LEVEL", help="DEBUG, INFO, WARNING")
    ] = "INFO",
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", envvar="LINEGUARD_LOG_FORMAT", help="text or json log lines")
    ] = LogFormat.text,
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    if log_level.upper() not in _LOG_LEVELS:
        raise typer.BadParameter(
            f"{log_level!r} is not one of {', '.join(_LOG_LEVELS)}", param_hint="--log-level"
        )
    configure_logging(log_level.upper(), log_format)
    # The floor resolves endpoints from the environment; on a developer's machine the `lineguard` commands
    # also find the local stack. Installed here, by the roof, so no production process depends on it.
    from lineguard.stack.endpoints import install_local_stack_fallback

    install_local_stack_fallback()

    warn_unknown_environment(ctx, os.environ)


def main() -> None:
    """Console-script entry point: the exit codes and one-line errors of every lineguard CLI."""
    run_cli(app)


if __name__ == "__main__":
    main()
