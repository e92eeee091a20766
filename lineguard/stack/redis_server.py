"""A local Redis server from the machine's own binary (Debian's ``redis-server``), for the live counters.

It listens on a free port of 127.0.0.1 only (no password: like the stack's Kafka and MongoDB, a development
server), daemonizes with a pid file, and keeps its data in an append-only file fsynced on every write
(``appendfsync always``): `lineguard counters run` commits Kafka offsets only after a counter update
returned, and with this setting "returned" means "on disk". RDB snapshots are off (the AOF is the data).
Integer sets stay packed up to 16,384 members: the counters' per-window sets of result digests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.endpoints import REDIS_ENV
from lineguard.stack.ports import pick_free_port
from schemas.errors import ConfigurationError, ServiceUnavailableError

RECORD = "redis.json"  # <state_dir>/redis.json: port, home, uri (read by lineguard.stack.endpoints)


def _binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if not found:
        raise ConfigurationError(
            f"redis-server is not installed: apt-get install -y redis-server (or set {REDIS_ENV})"
        )
    return found


def ping(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """Whether a Redis answers PING on ``host:port`` (a raw RESP exchange: no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class RedisServer:
    """One local server: its directory (AOF, log, pid file) and port."""

    home: Path
    port: int

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.home / "redis.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None and ping(self.port)

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
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        deadline = time.monotonic() + timeout_s
        while not ping(self.port):
            if done.returncode != 0 or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-600:] if self.log_file.exists() else ""
                raise ServiceUnavailableError(f"Redis did not start: {(tail or done.stderr).strip()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Redis fsyncs its AOF and exits), SIGKILL after ``timeout_s``."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.pid() is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)

    def purge(self) -> None:
        """Stop and delete the data (tests' throw-away servers)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def local_server(state_dir: Path, port: int | None = None) -> RedisServer:
    """The server recorded for ``state_dir`` (same port as last time), or a new one on a free port."""
    record = state_dir / RECORD
    if port is None and record.exists():
        port = int(json.loads(record.read_text())["port"])
    server = RedisServer(home=state_dir / "redis", port=port or pick_free_port())
    state_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"port": server.port, "home": str(server.home), "uri": server.uri}))
    return server
