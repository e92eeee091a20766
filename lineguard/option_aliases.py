"""Old option spellings kept working, hidden from ``--help``, after an option was renamed to the vocabulary
every command shares (``--group`` for a consumer group, ``--camera`` for a camera id, ``-s`` on seconds).

A rename must not break the scripts, unit files and compose files that use the old name, yet ``--help``
should teach only the new one; click has no hidden secondary names, so the old spelling is rewritten to the
new one before the command parses its arguments, with one deprecation warning. The root group installs the
table on the commands it loads (lineguard/lazy_commands.py); ``tests/unit/test_cli_vocabulary.py`` checks
that every old name parses and that no command shows one.
"""

from __future__ import annotations

import logging
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typer vendors click; these are the types its commands and contexts have
    from typer._click.core import Command, Context

log = logging.getLogger("lineguard.cli")

# command path below `lineguard` -> {old spelling: new spelling}
DEPRECATED: dict[tuple[str, ...], dict[str, str]] = {
    ("camera",): {"--camera-id": "--camera", "--close-timeout": "--close-timeout-s"},
    ("sink", "postgres"): {"--group-id": "--group", "--window-seconds": "--window-s"},
    ("dlq", "inspect"): {"--timeout": "--timeout-s"},
    ("dlq", "replay"): {"--timeout": "--timeout-s"},
    ("dataset", "check"): {"--json": "--json-out"},  # --json is a flag everywhere else
}


def rewrite(args: list[str], aliases: dict[str, str]) -> tuple[list[str], list[str]]:
    """``args`` with old spellings replaced (also ``--old=value``), and the old names that were used.
    Nothing after ``--`` is touched: that is a value, not an option."""
    out: list[str] = []
    used: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            out.extend(args[index:])
            break
        name, equals, value = arg.partition("=")
        if name in aliases:
            used.append(name)
            arg = f"{aliases[name]}{equals}{value}"
        out.append(arg)
    return out, used


def install(group: Command, path: tuple[str, ...] = ()) -> None:
    """Make the old spellings of ``DEPRECATED`` parse on the commands below ``group`` (idempotent)."""
    for name, command in getattr(group, "commands", {}).items():
        here = (*path, name)
        aliases = DEPRECATED.get(here)
        if aliases and not getattr(command, "_lineguard_aliases", None):
            _wrap(command, aliases)
        install(command, here)


def _wrap(command: Command, aliases: dict[str, str]) -> None:
    parse = command.parse_args

    def parse_args(self: Command, ctx: Context, args: list[str]) -> list[str]:
        rewritten, used = rewrite(args, aliases)
        for old in dict.fromkeys(used):
            log.warning("%s is deprecated: use %s", old, aliases[old])
        return list(parse(ctx, rewritten))

    # Instance attributes shadow the class's method: only this command parses the old spellings.
    object.__setattr__(command, "parse_args", types.MethodType(parse_args, command))
    object.__setattr__(command, "_lineguard_aliases", aliases)
