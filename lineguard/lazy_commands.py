"""Subcommands imported only when they run, so `lineguard --help` does not pay for every module.

Each subcommand module imports Kafka, MongoDB, OpenCV, pydantic settings or Keras at its top; importing all of
them for `lineguard --help` cost about 0.3 s of imports (1 s on a loaded machine). The root group lists the
commands from a static table (name and one-line help) and imports a command's module only when that command is
resolved to run or to print its own help. `tests/unit/test_cli_lazy.py` checks that the table's help lines
match the commands' own, so the table cannot drift from the code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # typer vendors click; these are the types its commands and contexts have
    from typer._click.core import Command, Context, HelpFormatter


@dataclass(frozen=True, slots=True)
class LazyModule:
    """One module that registers one or more subcommands.

    ``target`` is ``module:attribute``; ``kind`` says what the attribute is: ``register`` (a function taking
    the app and adding its commands), ``command`` (a function to add as the one command ``names[0]``) or
    ``group`` (a Typer app to add as the group ``names[0]``).
    """

    target: str
    kind: str
    names: dict[str, str]  # subcommand name -> its one-line help, as `lineguard --help` lists it
    groups: frozenset[str] = frozenset()  # which of the names are command groups

    def register(self, app: typer.Typer) -> None:
        module_name, attribute = self.target.split(":")
        loaded: Any = getattr(importlib.import_module(module_name), attribute)
        first = next(iter(self.names))
        if self.kind == "register":
            loaded(app)
        elif self.kind == "command":
            app.command(first)(loaded)
        elif self.kind == "group":
            app.add_typer(loaded, name=first)
        else:  # pragma: no cover - a typo in the table; the unit test loads every entry
            raise ValueError(f"unknown lazy command kind {self.kind!r}")


class LazyTyperGroup(TyperGroup):
    """The root group: lists ``modules`` without importing them, imports one when its command is used."""

    modules: tuple[LazyModule, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # TyperGroup's own, passed through
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        listed = list(super().list_commands(ctx))
        for module in self.modules:
            listed.extend(name for name in module.names if name not in listed)
        return listed

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        module = self._module_of(cmd_name)
        if module is None:
            return None
        if self._listing:  # the root's own help: name and help line, no import
            stub_type: type[TyperCommand] | type[TyperGroup] = (
                TyperGroup if cmd_name in module.groups else TyperCommand
            )
            return stub_type(name=cmd_name, help=module.names[cmd_name])
        self.load(module)
        return super().get_command(ctx, cmd_name)

    def load(self, module: LazyModule) -> None:
        """Import ``module`` and add every command it registers to this group."""
        holder = typer.Typer()
        module.register(holder)
        loaded = typer.main.get_group(holder)
        for name, command in loaded.commands.items():
            self.add_command(command, name)
        from lineguard.option_aliases import install  # only once a subcommand is loaded, never for --help

        install(self)  # renamed options keep their old spelling, hidden (lineguard/option_aliases.py)

    def invoke(self, ctx: Context) -> Any:  # whatever the subcommand returns
        # The root's callback runs before the subcommand parses its arguments and sees none of them; it needs
        # them to tell `lineguard worker --help` from a run (lineguard/env_check.py warns only on a run).
        ctx.meta["lineguard.subcommand_args"] = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        return super().invoke(ctx)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def _module_of(self, name: str) -> LazyModule | None:
        return next((module for module in self.modules if name in module.names), None)


def lazy_group(modules: tuple[LazyModule, ...]) -> type[LazyTyperGroup]:
    """A ``cls`` for ``typer.Typer`` whose root group resolves ``modules`` lazily."""
    return type("LineguardGroup", (LazyTyperGroup,), {"modules": modules})
