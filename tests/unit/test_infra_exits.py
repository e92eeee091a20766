"""One set of exit codes for every lineguard CLI (infra.exits.run_cli), on a real typer app."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer

from infra.exits import run_cli
from schemas.errors import ConfigurationError, ServiceUnavailableError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def act(
    outcome: Annotated[str, typer.Argument()],
    count: Annotated[int, typer.Option(min=1)] = 1,
) -> int | None:
    if outcome == "bad-config":
        raise ConfigurationError("--thing must be set")
    if outcome == "server-down":
        raise ServiceUnavailableError("broker unreachable")
    if outcome == "bug":
        raise RuntimeError("a bug keeps its traceback")
    if outcome == "exit-3":
        raise typer.Exit(3)
    if outcome == "interrupt":
        raise KeyboardInterrupt
    return 4 if outcome == "return-4" else None


def _run(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        run_cli(app, args)
    code = stopped.value.code
    assert isinstance(code, int)
    return code


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (("bad-config",), 2, "error: --thing must be set\n"),
        (("server-down",), 1, "error: broker unreachable\n"),
        (("ok", "--count", "0"), 2, "error: Invalid value for '--count'"),
        (("ok", "--bogus"), 2, "error: No such option: --bogus"),
    ],
)
def test_errors_are_one_line_with_their_exit_code(
    args: tuple[str, ...], code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(*args) == code

    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(("outcome", "code"), [("ok", 0), ("exit-3", 3), ("return-4", 4), ("interrupt", 130)])
def test_a_command_ends_with_its_own_code(outcome: str, code: int) -> None:
    assert _run(outcome) == code


def test_an_error_that_is_not_lineguard_s_propagates() -> None:
    with pytest.raises(RuntimeError, match="keeps its traceback"):
        run_cli(app, ["bug"])
