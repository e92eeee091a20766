"""A local MQTT broker from the machine's own binary (Debian's ``mosquitto``), for `lineguard plc` over MQTT.

Like the stack's Redis: 127.0.0.1 only, anonymous (a development broker), daemonized with a pid file, its
retained messages and sessions persisted under its home directory (saved on every change and at SIGTERM:
the bridge's retained per-line state survives a broker restart).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.endpoints import MQTT_ENV
from lineguard.stack.ports import pick_free_port
from schemas.errors import ConfigurationError, ServiceUnavailableError

RECORD = "mosquitto.json"  # <state_dir>/mosquitto.json: port, home, uri

# MQTT 3.1.1 CONNECT (clean session, empty client id, keep-alive 60 s) and the CONNACK "accepted" answer.
_CONNECT = bytes([0x10, 0x0C, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00, 0x00])
_CONNACK_OK = bytes([0x20, 0x02, 0x00, 0x00])


def _binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if not found:
        raise ConfigurationError(
            f"mosquitto is not installed: apt-get install -y mosquitto (or set {MQTT_ENV})"
        )
    return found


def ping(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """Whether an MQTT broker accepts a connection on ``host:port`` (raw CONNECT/CONNACK, no client)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(_CONNECT)
            accepted = connection.recv(4) == _CONNACK_OK
            connection.sendall(bytes([0xE0, 0x00]))  # DISCONNECT
            return accepted
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class MosquittoServer:
    """One local broker: its directory (config, persistence, log, pid file) and port."""

    home: Path
    port: int

    @property
    def uri(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "mosquitto.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "mosquitto.pid"

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
        """Start (reusing the persisted retained messages of an earlier run) and wait until it accepts."""
        if self.running():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    f"user {getpass.getuser()}",  # as root it would switch to a `mosquitto` user otherwise
                    "persistence true",
                    f"persistence_location {self.home}/",
                    "autosave_interval 1",
                    "autosave_on_changes true",
                    f"pid_file {self.pid_file}",
                    f"log_dest file {self.log_file}",
                ]
            )
            + "\n"
        )
        done = subprocess.run(
            [_binary(), "-c", str(config), "-d"], capture_output=True, text=True, timeout=30, check=False
        )
        deadline = time.monotonic() + timeout_s
        while not ping(self.port):
            if done.returncode != 0 or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-600:] if self.log_file.exists() else ""
                raise ServiceUnavailableError(f"mosquitto did not start: {(tail or done.stderr).strip()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (mosquitto saves its persistence file and exits), SIGKILL after ``timeout_s``."""
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
        """Stop and delete the data (tests' throw-away brokers)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def local_server(state_dir: Path, port: int | None = None) -> MosquittoServer:
    """The broker recorded for ``state_dir`` (same port as last time), or a new one on a free port."""
    record = state_dir / RECORD
    if port is None and record.exists():
        port = int(json.loads(record.read_text())["port"])
    server = MosquittoServer(home=state_dir / "mosquitto", port=port or pick_free_port())
    state_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"port": server.port, "home": str(server.home), "uri": server.uri}))
    return server
