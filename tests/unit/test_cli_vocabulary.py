"""One vocabulary across commands, and every long-running command's options settable from the environment
and shown so in --help. Walks every command's parameters (typer.main.get_command) and checks the rules."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import typer
import typer.main
from typer.core import TyperOption
from typer.testing import CliRunner

from lineguard.cli import COMMANDS, app
from lineguard.option_aliases import DEPRECATED, rewrite

# Processes that run for hours under a supervisor (systemd, compose, Kubernetes), configured by environment.
LONG_RUNNING = (
    ("camera",),
    ("worker",),
    ("lag",),
    ("console",),
    ("parts",),
    ("plc",),
    ("sink", "postgres"),
    ("shadow", "run"),
)
# Options of those that are for a person at a terminal, not for a deployment.
NOT_FOR_DEPLOYMENTS: dict[tuple[str, ...], set[str]] = {
    ("camera",): {"--progress"},
    ("lag",): {"--once"},
    # a replay is one run over a range, not a deployment
    ("shadow", "run"): {"--from", "--to", "--from-offset", "--to-offset", "--partition", "--timeout-s"},
}
# Connection strings every tool of the ecosystem reads under these names.
STANDARD_VARIABLES = {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "POSTGRES_URI", "REDIS_URL"}
# Same spelling, two kinds of value: (option, command path) -> why that is not a second vocabulary.
TWO_KINDS = {
    ("--version", ()): "the root's --version flag prints lineguard's version; below it, a model version",
}


def _root() -> Any:
    root: Any = typer.main.get_command(app)
    for module in COMMANDS:
        root.load(module)
    return root


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _options(command: Any) -> list[TyperOption]:
    return [p for p in command.params if isinstance(p, TyperOption) and not p.hidden]


def _variables(option: TyperOption) -> list[str]:
    envvar = option.envvar
    return [envvar] if isinstance(envvar, str) else list(envvar or [])


@pytest.fixture(scope="module")
def commands() -> dict[tuple[str, ...], Any]:
    return dict(_commands(_root()))


def test_long_running_commands_read_every_option_from_the_environment_and_say_so(
    commands: dict[tuple[str, ...], Any],
) -> None:
    runner = CliRunner()
    for path in LONG_RUNNING:
        command = commands[path]
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
        assert shown.exit_code == 0, shown.output
        for option in _options(command):
            if option.opts[0] in NOT_FOR_DEPLOYMENTS.get(path, set()):
                continue
            assert _variables(option), (
                f"lineguard {' '.join(path)} {option.opts[0]} has no environment variable"
            )
            assert option.show_envvar, option.opts
            for variable in _variables(option):
                assert variable in shown.output, f"{variable} is not in `lineguard {' '.join(path)} --help`"


def test_variables_are_lineguard_names_and_one_variable_has_one_spelling(
    commands: dict[tuple[str, ...], Any],
) -> None:
    spellings: dict[str, set[str]] = defaultdict(set)
    for _path, command in commands.items():
        for option in _options(command):
            for variable in _variables(option):
                assert variable.startswith("LINEGUARD_") or variable in STANDARD_VARIABLES, variable
                spellings[variable].add(option.opts[0])
    assert {v: s for v, s in spellings.items() if len(s) > 1} == {}


def test_one_name_is_one_kind_of_value_across_commands(commands: dict[tuple[str, ...], Any]) -> None:
    kinds: dict[str, dict[bool, list[tuple[str, ...]]]] = defaultdict(lambda: defaultdict(list))
    for path, command in commands.items():
        for option in _options(command):
            for name in option.opts:
                if (name, path) not in TWO_KINDS:
                    kinds[name][bool(option.is_flag)].append(path)
    assert {name: dict(k) for name, k in kinds.items() if len(k) > 1} == {}


def test_the_shared_vocabulary(commands: dict[tuple[str, ...], Any]) -> None:
    for path, command in commands.items():
        old_names = set(DEPRECATED.get(path, {}))  # `--json` is retired on one command, a flag on others
        for option in _options(command):
            names = set(option.opts) | set(option.secondary_opts)
            assert not names & old_names, (path, names)  # a renamed spelling is hidden, never shown
            for name in names:
                # a consumer group is --group (the console's --worker-group names another process's group)
                if "group" in name:
                    assert name in ("--group", "--worker-group"), (path, name)
                # an id is named by what it identifies: --camera, --line (not --camera-id, --line-id)
                assert name not in ("--camera-id", "--line-id", "--station-id"), (path, name)
                # seconds carry -s
                seconds = re.search(r"\bseconds\b", (option.help or "").split(";")[0]) or name.endswith(
                    "timeout"
                )
                if seconds:  # seconds are spelt with -s (--timeout-s, --interval-s)
                    assert name.endswith("-s"), (path, name, option.help)


@pytest.mark.parametrize(
    ("path", "old", "new"), [(p, o, n) for p, a in DEPRECATED.items() for o, n in a.items()]
)
def test_an_old_spelling_still_parses_as_the_new_one_with_a_warning(
    commands: dict[tuple[str, ...], Any], path: tuple[str, ...], old: str, new: str, caplog: Any
) -> None:
    command = commands[path]
    option = next(o for o in _options(command) if new in o.opts)
    value = "7"
    # required positional arguments (e.g. dataset check's folder) get a placeholder
    positional = ["x" for p in command.params if not p.opts[0].startswith("-") and p.required]
    with caplog.at_level(logging.WARNING, logger="lineguard.cli"):
        ctx = command.make_context(path[-1], [*positional, old, value])
        by_equals = command.make_context(path[-1], [*positional, f"{old}={value}"])
    assert str(ctx.params[option.name]) in ("7", "7.0") and ctx.params == by_equals.params
    assert f"{old} is deprecated: use {new}" in caplog.text


def test_rewrite_leaves_values_after_a_double_dash() -> None:
    aliases = {"--group-id": "--group"}
    assert rewrite(["--group-id", "g", "--", "--group-id"], aliases) == (
        ["--group", "g", "--", "--group-id"],
        ["--group-id"],
    )
    assert rewrite(["--group-idx", "g"], aliases) == (["--group-idx", "g"], [])
