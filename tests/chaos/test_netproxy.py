"""The TCP fault proxy (chaos.netproxy) against a real echo server on loopback: each fault does its job."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from chaos.netproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy("127.0.0.1", server.server_address[1], name="echo") as running:
        yield running
    server.shutdown()
    server.server_close()


def _connect(proxy: FaultProxy, timeout_s: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout_s)


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_forwards_and_delays_by_the_latency(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock, b"hello") == b"hello"
        proxy.latency(150)
        started = time.monotonic()
        assert _echo(sock, b"again") == b"again"
        assert time.monotonic() - started >= 0.3  # 150 ms each way, never less
    assert proxy.stats.connections == 1 and proxy.stats.bytes_up == 10 and proxy.stats.bytes_down == 10


def test_a_partition_holds_bytes_and_delivers_them_afterwards(proxy: FaultProxy) -> None:
    with _connect(proxy, timeout_s=0.5) as sock:
        proxy.partition(True)
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):
            sock.recv(16)
        proxy.partition(False)
        sock.settimeout(5)
        assert sock.recv(16) == b"held"


def test_reset_sends_rst_and_new_connections_work(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock, b"x") == b"x"
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"y")
            sock.recv(16)
    with _connect(proxy) as fresh:
        assert _echo(fresh, b"z") == b"z"


def test_half_open_swallows_everything_without_fin_or_rst(proxy: FaultProxy) -> None:
    with _connect(proxy, timeout_s=0.5) as sock:
        assert _echo(sock, b"a") == b"a"
        assert proxy.half_open() == 1
        sock.sendall(b"lost")  # accepted by the kernel, never answered, never closed
        with pytest.raises(TimeoutError):
            sock.recv(16)
        with _connect(proxy) as fresh:
            assert _echo(fresh, b"b") == b"b"
