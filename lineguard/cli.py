"""The `lineguard` command. Each subcommand group lives next to the code it drives; this module only wires
them together, configures logging once and turns user mistakes into one clear line and exit code 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lineguard.logs import LogFormat, configure_logging
from schemas.errors import ConfigurationError, LineguardError

app = typer.Typer(
    name="lineguard",
    help="Streaming defect detection for factory production lines: cameras -> Kafka -> vision models -> "
    "results, defect events and MongoDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="LINEGUARD_LOG_LEVEL", help="DEBUG, INFO, WARNING")
    ] = "INFO",
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", envvar="LINEGUARD_LOG_FORMAT", help="text or json log lines")
    ] = LogFormat.text,
) -> None:
    configure_logging(log_level, log_format)


def _register() -> None:
    # Subcommand modules import their heavy dependencies (TensorFlow, OpenCV) lazily inside the commands,
    # so `lineguard --help` stays fast.
    from lineguard.stack.cli import app as stack_app

    app.add_typer(stack_app, name="stack")

    from streams.cli import camera

    app.command("camera")(camera)

    from vision.data_cli import register as register_data_commands

    register_data_commands(app)

    from vision.train_cli import export_command, train_command

    app.command("train")(train_command)
    app.command("export")(export_command)

    from workers.cli import register as register_worker_commands

    register_worker_commands(app)

    from lineguard.demo.cli import register as register_demo_command

    register_demo_command(app)

    from lineguard.lag.cli import register as register_lag_command

    register_lag_command(app)

    from parts.cli import register as register_parts_command

    register_parts_command(app)

    from quality.cli import report_command

    app.command("report")(report_command)

    from mes.cli import app as sink_app

    app.add_typer(sink_app, name="sink")


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ConfigurationError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except LineguardError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)


if __name__ == "__main__":
    main()
