"""How every lineguard command line ends: one set of exit codes and one-line errors for all of them.

``lineguard``, ``python -m workers`` and ``python -m chaos`` run their typer apps through :func:`run_cli`:

* 0: done; a command that returns an int or raises ``typer.Exit(n)`` exits with that code;
* 2: bad input: a usage error (unknown option, bad value) or a :class:`~schemas.errors.ConfigurationError`;
* 1: any other :class:`~schemas.errors.LineguardError` (a server that cannot be reached, a bad record...);
* 130: interrupted (Ctrl-C, end of input at a prompt).

Bad input is one red line on stderr, never a traceback nor a box; anything that is not a lineguard error is
a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

try:  # typer vendors click from 0.2x on; the exceptions raised are that copy's
    from typer._click import exceptions as cli_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as cli_errors  # type: ignore[no-redef]

BAD_INPUT = 2
FAILED = 1
INTERRUPTED = 130


def exit_code(exc: BaseException) -> int | None:
    """The exit code of a lineguard error (2 for bad configuration, 1 for the rest); None for any other."""
    # Imported on failure only: `schemas` pulls in fastavro and confluent-kafka, which `lineguard --help`
    # does not need (bench/bench_cli_help.py).
    from schemas.errors import ConfigurationError, LineguardError

    if isinstance(exc, ConfigurationError):
        return BAD_INPUT
    if isinstance(exc, LineguardError):
        return FAILED
    return None


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: <message>`` in red on stderr and exit with ``code``."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    sys.exit(code)


def run_cli(app: typer.Typer, args: Sequence[str] | None = None) -> NoReturn:
    """Run ``app`` on ``args`` (default ``sys.argv[1:]``) with the exit codes above, then exit."""
    try:
        # Not standalone: click's usage errors come here, to be one line instead of a box.
        code = app(args=None if args is None else list(args), standalone_mode=False)
    except cli_errors.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(BAD_INPUT)
    except cli_errors.UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        fail(f"{exc.format_message()}{hint}", BAD_INPUT)
    except cli_errors.ClickException as exc:  # e.g. a file option that cannot be opened
        fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(INTERRUPTED)
    except Exception as exc:
        found = exit_code(exc)
        if found is None:
            raise
        fail(str(exc), found)
    sys.exit(code if isinstance(code, int) else 0)
