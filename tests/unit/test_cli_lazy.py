"""The root command lists subcommands from a static table without importing them (lineguard/lazy_commands.py):
the table must name every command the modules register, with the same help line, and nothing else."""

from __future__ import annotations

import subprocess
import sys

import typer
import typer.main
from typer.core import TyperGroup

from lineguard.cli import COMMANDS
from lineguard.lazy_commands import LazyTyperGroup


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def test_the_table_names_every_registered_command_with_its_own_help_line() -> None:
    for module in COMMANDS:
        holder = typer.Typer()
        module.register(holder)
        registered = typer.main.get_group(holder)
        assert set(registered.commands) == set(module.names), module.target
        for name, listed_help in module.names.items():
            command = registered.commands[name]
            assert _first_paragraph(command.help) == _first_paragraph(listed_help), name
            assert isinstance(command, TyperGroup) == (name in module.groups), name


def test_root_help_lists_every_command_without_importing_the_heavy_modules() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from lineguard.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.output)\n"
        "heavy = [m for m in ('workers.cli', 'streams.cli', 'vision.data_cli', 'confluent_kafka', 'pymongo',"
        " 'cv2', 'numpy', 'schemas') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("HEAVY="), done.stdout[-300:]
    for module in COMMANDS:
        for name in module.names:
            assert f" {name} " in done.stdout, name


def test_a_lazy_command_runs_and_an_unknown_one_is_refused() -> None:
    from typer.testing import CliRunner

    from lineguard.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["models", "--help"])
    assert shown.exit_code == 0 and "promote" in shown.output
    group = typer.main.get_command(app)
    assert isinstance(group, LazyTyperGroup)
    assert group.get_command(typer.Context(group), "no-such-command") is None
