"""``lineguard demo --console``: the inspection console beside the demo, so its live view shows the defects
as the run makes them and its lists hold them afterwards.

The console is a `lineguard console` subprocess on the demo's topics, database and worker group, started
before the camera (the live view reads the defect-events topic from "now" on), with a demo user of role
reviewer whose random password is printed with the summary. It keeps serving after the summary until Ctrl-C
(or SIGTERM), then stops. Off by default: the plain demo stays a ~2 minute run that ends by itself.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.endpoints import KAFKA_ENV, MONGODB_ENV, Endpoints
from schemas.errors import ConfigurationError, ServiceUnavailableError

USER = "demo"
START_TIMEOUT_S = 60.0


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"GET /api/session HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return connection.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


@dataclass
class DemoConsole:
    process: subprocess.Popen[bytes]
    port: int
    password: str
    log_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @classmethod
    def start(
        cls,
        endpoints: Endpoints,
        database: str,
        topic_prefix: str,
        worker_group: str,
        port: int,
        log_dir: Path,
    ) -> DemoConsole:
        """Make the demo user, start the console and wait until it answers HTTP."""
        if not _port_is_free(port):
            raise ConfigurationError(f"--console-port {port} is taken: pick another one")
        from pymongo import MongoClient

        from lineguard.console.auth import AccessStore, Role

        password = secrets.token_urlsafe(12)
        client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri)
        try:
            AccessStore(client[database]).add_user(USER, password, Role.reviewer)  # replaces last run's
        finally:
            client.close()
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / "console.log"
        env = {**os.environ, KAFKA_ENV: endpoints.kafka_bootstrap, MONGODB_ENV: endpoints.mongodb_uri}
        command = [
            sys.executable, "-m", "lineguard.cli", "console", "--port", str(port), "--database", database,
            "--topic-prefix", topic_prefix, "--worker-group", worker_group,
        ]  # fmt: skip
        with open(log_file, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        console = cls(process, port, password, log_file)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                console.stop()
                tail = log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise ServiceUnavailableError(f"the console did not start: {tail[0]} (log: {log_file})")
            time.sleep(0.2)
        return console

    def describe(self, summary: dict[str, Any]) -> None:
        """Put the running console (URL, sign-in) into the summary's ``where.console``."""
        where = summary.setdefault("where", {})
        where["console"] = {
            **where.get("console", {}),
            "url": self.url,
            "running": True,
            "user": USER,
            "password": self.password,  # stdout only, never logged; a fresh one every run
            "log": str(self.log_file),
        }

    def serve_until_interrupted(self, echo: Callable[[str], None]) -> None:
        """Keep the console up until Ctrl-C / SIGTERM (or until it exits by itself), then stop it."""
        done = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
        echo(f"console on {self.url} (user {USER}, password {self.password}); Ctrl-C stops it")
        try:
            while not done.is_set() and self.process.poll() is None:
                done.wait(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
