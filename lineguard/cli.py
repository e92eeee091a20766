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

    from lineguard.tail.cli import register as register_tail_command

    register_tail_command(app)

    from lineguard.console.cli import register as register_console_command

    register_console_command(app)

    from parts.cli import register as register_parts_command

    register_parts_command(app)

    from quality.cli import report_command

    app.command("report")(report_command)

    from mes.cli import app as sink_app

    app.add_typer(sink_app, name="sink")


_register()


def main() -> None:
    """Console-script entry point."""
    try:  # typer vendors click from 0.2x on; the exceptions raised are that copy's
        from typer._click import exceptions as cli_errors
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import exceptions as cli_errors  # type: ignore[no-redef]

    try:
        # Not standalone: click's usage errors come here, to be one line instead of a box.
        code = app(standalone_mode=False)
    except cli_errors.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except cli_errors.UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        typer.secho(f"error: {exc.format_message()}{hint}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except cli_errors.ClickException as exc:  # e.g. a file option that cannot be opened
        typer.secho(f"error: {exc.format_message()}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except ConfigurationError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except LineguardError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
