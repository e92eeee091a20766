"""Port picking for the stack's services."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from lineguard.stack.ports import accepts_connections, choose_port, pick_free_port, port_is_free


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        yield server.getsockname()[1]


def test_a_listening_port_is_taken_and_a_picked_port_is_free(listening_port: int) -> None:
    assert not port_is_free(listening_port)
    assert accepts_connections(listening_port)
    picked = pick_free_port(exclude={listening_port})
    assert picked != listening_port
    assert port_is_free(picked)


def test_pick_free_port_never_returns_an_excluded_port() -> None:
    first = pick_free_port()
    assert all(pick_free_port(exclude={first}) != first for _ in range(20))


def test_choose_port_prefers_requested_then_recorded_then_fresh(listening_port: int) -> None:
    free = pick_free_port(exclude={listening_port})

    assert choose_port(recorded=free, requested=12345) == 12345
    assert choose_port(recorded=free, requested=None) == free  # same address as last time
    fresh = choose_port(recorded=listening_port, requested=None)  # recorded one is busy now
    assert fresh not in (listening_port, 0)
    assert choose_port(recorded=free, requested=None, exclude={free}) != free  # promised to another service
