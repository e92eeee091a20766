"""A local MQTT broker from the machine's own binary (Debian's ``mosquitto``), for `lineguard plc` over MQTT.

Like the stack's Redis: 127.0.0.1 only, anonymous (a development broker), daemonized with a pid file, its
retained messages and sessions persisted under its home directory (saved on every change and at SIGTERM:
the bridge's retained per-line state survives a broker restart).
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from pathlib import Path

from infra.endpoints import MQTT_ENV
from lineguard.stack.daemon import PidFileDaemon, find_binary, recorded_port, write_record

RECORD = "mosquitto.json"  # <state_dir>/mosquitto.json: port, home, uri

# MQTT 3.1.1 CONNECT (clean session, empty client id, keep-alive 60 s) and the CONNACK "accepted" answer.
_CONNECT = bytes([0x10, 0x0C, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00, 0x00])
_CONNACK_OK = bytes([0x20, 0x02, 0x00, 0x00])


def _binary() -> str:
    return find_binary("mosquitto", "/usr/sbin/mosquitto", "mosquitto", MQTT_ENV)


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
class MosquittoServer(PidFileDaemon):
    """One local broker: its directory (config, persistence, log, pid file) and port."""

    label = "mosquitto"
    stem = "mosquitto"

    @property
    def uri(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def ping(self) -> bool:
        return ping(self.port)

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
        self.launch([_binary(), "-c", str(config), "-d"], timeout_s)


def local_server(state_dir: Path, port: int | None = None) -> MosquittoServer:
    """The broker recorded for ``state_dir`` (same port as last time), or a new one on a free port."""
    server = MosquittoServer(home=state_dir / "mosquitto", port=recorded_port(state_dir, RECORD, port))
    write_record(state_dir, RECORD, server, server.uri)
    return server
