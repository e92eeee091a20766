"""What the stack's daemonizing servers (Redis, mosquitto) share: a home directory with a pid file and a
log, a port recorded per state directory, start-and-wait on a raw protocol ping, and stop with SIGTERM then
SIGKILL. Each server says only how it is started and pinged."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lineguard.stack.ports import pick_free_port
from schemas.errors import ConfigurationError, ServiceUnavailableError


def find_binary(name: str, usual_path: str, package: str, env_var: str) -> str:
    """The server's executable on PATH or at its Debian path, else a one-line install hint."""
    found = shutil.which(name) or (usual_path if os.path.exists(usual_path) else None)
    if not found:
        raise ConfigurationError(f"{name} is not installed: apt-get install -y {package} (or set {env_var})")
    return found


@dataclass(frozen=True, slots=True)
class PidFileDaemon:
    """One local server: its directory (data, log, pid file) and port. Subclasses name the files
    (``label``, ``stem``) and implement :meth:`ping`."""

    home: Path
    port: int

    label = "server"  # for messages
    stem = "server"  # <home>/<stem>.log and <stem>.pid

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.stem}.log"

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.stem}.pid"

    def ping(self) -> bool:
        raise NotImplementedError

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None and self.ping()

    def launch(self, command: list[str], timeout_s: float) -> None:
        """Run the daemonizing ``command`` and wait until the server answers its ping."""
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        deadline = time.monotonic() + timeout_s
        while not self.ping():
            if done.returncode != 0 or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-600:] if self.log_file.exists() else ""
                raise ServiceUnavailableError(f"{self.label} did not start: {(tail or done.stderr).strip()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (the server saves its data and exits), SIGKILL after ``timeout_s``."""
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


def recorded_port(state_dir: Path, record: str, port: int | None) -> int:
    """``port``, else the one recorded in ``state_dir/record`` by an earlier run, else a free one."""
    path = state_dir / record
    if port is None and path.exists():
        port = int(json.loads(path.read_text())["port"])
    return port or pick_free_port()


def write_record(state_dir: Path, record: str, server: PidFileDaemon, uri: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / record).write_text(json.dumps({"port": server.port, "home": str(server.home), "uri": uri}))
