"""Loopback TCP ports for the stack's services."""

from __future__ import annotations

import socket
from collections.abc import Iterable

LOOPBACK = "127.0.0.1"


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Can a server bind this port now? SO_REUSEADDR so that sockets in TIME_WAIT (a service we just
    stopped) do not count as taken: the services themselves bind with it too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(exclude: Iterable[int] = (), host: str = LOOPBACK, attempts: int = 50) -> int:
    """A port the kernel considers free, not in ``exclude`` (ports already promised to another service)."""
    excluded = set(exclude)
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in excluded:
            return port
    raise RuntimeError(f"no free port found on {host} after {attempts} attempts")


def choose_port(recorded: int | None, requested: int | None, exclude: Iterable[int] = ()) -> int:
    """The port a service should listen on: the one asked for, else the one it had before (so its address
    stays the same across restarts) if still free, else a fresh free port."""
    if requested:
        return requested
    excluded = set(exclude)
    if recorded and recorded not in excluded and port_is_free(recorded):
        return recorded
    return pick_free_port(exclude=excluded)


def accepts_connections(port: int, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
