"""A TCP fault proxy (asyncio, on a thread of its own): the network between a worker and a server, made bad.

Faults, each switched on and off from any thread:

* ``latency(ms)``: every chunk is delivered ``ms`` later, in both directions (queued, so throughput stays);
* ``bandwidth(bytes_per_s)``: each direction of each connection is throttled to that rate;
* ``reset()``: every open connection is closed with a TCP RST (``SO_LINGER`` 0) on both sides;
* ``partition(True)``: nothing is forwarded either way until ``partition(False)``; bytes already read are
  held and delivered afterwards, as TCP retransmission would; new connections are accepted and held too;
* ``half_open()``: every open connection goes silent for good (bytes are swallowed, no FIN, no RST), the
  way a connection looks after a NAT or firewall drops its state: only the client's own timeouts notice it.
  New connections work normally.

Why not toxiproxy: it is a Go binary to build and run beside the harness; this is 200 lines with no
dependency, and the harness drives it in-process (no control API to wait for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_QUEUE_CHUNKS = 64  # per direction: bounds what the proxy holds, so a slow link pushes back on the sender


@dataclass
class ProxyStats:
    connections: int = 0
    resets: int = 0
    half_opened: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0


@dataclass(eq=False)  # identity-hashed: kept in a set
class _Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    silent: bool = False  # half-open: swallow everything from now on
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Listens on ``127.0.0.1:<port>`` and forwards to ``upstream``; ``port`` 0 picks a free one."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int = 0, name: str = "proxy") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.name = name
        self._requested_port = port
        self.port = 0
        self.stats = ProxyStats()
        self._latency_s = 0.0
        self._bytes_per_s: float | None = None
        self._open = threading.Event()  # set = forwarding (no partition)
        self._open.set()
        self._connections: set[_Connection] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"netproxy-{name}", daemon=True)

    # -- life -------------------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = self._run(self._start_server())
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("%s proxy 127.0.0.1:%d -> %s:%d", self.name, self.port, *self.upstream)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self.clear()
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- faults -----------------------------------------------------------------------------------------
    def latency(self, ms: float) -> None:
        self._latency_s = max(0.0, ms) / 1000

    def bandwidth(self, bytes_per_s: float | None) -> None:
        self._bytes_per_s = bytes_per_s if bytes_per_s and bytes_per_s > 0 else None

    def partition(self, on: bool) -> None:
        if on:
            self._open.clear()
        else:
            self._open.set()

    def reset(self) -> int:
        """RST every open connection; returns how many."""
        return int(self._run(self._reset_all()))

    def half_open(self) -> int:
        """Silence every open connection for good; returns how many."""
        connections = list(self._connections)
        for connection in connections:
            connection.silent = True
        self.stats.half_opened += len(connections)
        return len(connections)

    def clear(self) -> None:
        """No latency, no bandwidth limit, no partition (half-open connections stay dead)."""
        self.latency(0)
        self.bandwidth(None)
        self.partition(False)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    # -- inside the loop --------------------------------------------------------------------------------
    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    async def _start_server(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", self._requested_port)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> int:
        connections = list(self._connections)
        for connection in connections:
            for writer in (connection.client, connection.server):
                _rst(writer)
            for task in connection.tasks:
                task.cancel()
            self._connections.discard(connection)
        self.stats.resets += len(connections)
        return len(connections)

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            server_reader, server = await asyncio.open_connection(*self.upstream)
        except OSError:
            _rst(client)  # the server is down: the client sees a refused connection, as it would directly
            return
        self.stats.connections += 1
        connection = _Connection(client, server)
        self._connections.add(connection)
        up = asyncio.create_task(self._pipe(client_reader, server, connection, upstream=True))
        down = asyncio.create_task(self._pipe(server_reader, client, connection, upstream=False))
        connection.tasks = [up, down]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(connection.tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in connection.tasks:
            task.cancel()
        if connection in self._connections:
            self._connections.discard(connection)
            for writer in (client, server):
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: _Connection,
        upstream: bool,
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)
        sender = asyncio.create_task(self._send(queue, writer, connection, upstream))
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await queue.put((time.monotonic() + self._latency_s, data))
            await queue.put((0.0, b""))  # EOF after what is queued
            await sender
        finally:
            sender.cancel()

    async def _send(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        connection: _Connection,
        upstream: bool,
    ) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while not self._open.is_set():  # partitioned: hold the bytes
                await asyncio.sleep(0.05)
            if connection.silent:
                continue
            rate = self._bytes_per_s
            if rate is not None:
                await asyncio.sleep(len(data) / rate)
            if upstream:  # counted before the write, so a reply seen by the client is never ahead of it
                self.stats.bytes_up += len(data)
            else:
                self.stats.bytes_down += len(data)
            writer.write(data)
            await writer.drain()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: SO_LINGER on with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
