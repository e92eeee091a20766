"""A local Redis server from the machine's own binary (Debian's ``redis-server``), for the live counters.

It listens on a free port of 127.0.0.1 only (no password: like the stack's Kafka and MongoDB, a development
server), daemonizes with a pid file, and keeps its data in an append-only file fsynced on every write
(``appendfsync always``): `lineguard counters run` commits Kafka offsets only after a counter update
returned, and with this setting "returned" means "on disk". RDB snapshots are off (the AOF is the data).
Integer sets stay packed up to 16,384 members: the counters' per-window sets of result digests.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from infra.endpoints import REDIS_ENV
from lineguard.stack.daemon import PidFileDaemon, find_binary, recorded_port, write_record

RECORD = "redis.json"  # <state_dir>/redis.json: port, home, uri (read by lineguard.stack.endpoints)


def _binary() -> str:
    return find_binary("redis-server", "/usr/bin/redis-server", "redis-server", REDIS_ENV)


def ping(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """Whether a Redis answers PING on ``host:port`` (a raw RESP exchange: no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class RedisServer(PidFileDaemon):
    """One local server: its directory (AOF, log, pid file) and port."""

    label = "Redis"
    stem = "redis"

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        return ping(self.port)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start (reusing the data of an earlier run) and wait until it answers PING."""
        if self.running():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        command = [
            _binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--dir", str(self.home), "--daemonize", "yes", "--pidfile", str(self.pid_file),
            "--logfile", str(self.log_file), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--maxmemory-policy", "noeviction", "--set-max-intset-entries", "16384",
        ]  # fmt: skip
        self.launch(command, timeout_s)


def local_server(state_dir: Path, port: int | None = None) -> RedisServer:
    """The server recorded for ``state_dir`` (same port as last time), or a new one on a free port."""
    server = RedisServer(home=state_dir / "redis", port=recorded_port(state_dir, RECORD, port))
    write_record(state_dir, RECORD, server, server.uri)
    return server
