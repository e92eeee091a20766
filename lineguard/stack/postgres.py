"""A local PostgreSQL server from the machine's own binaries (Debian's ``postgresql``), for the MES sink.

``initdb`` once into a data directory, then ``pg_ctl start``/``stop`` on a free port of 127.0.0.1, with a
password login (``scram-sha-256`` over TCP) for the user ``lineguard``. PostgreSQL refuses to run as root,
so as root the server runs as the ``postgres`` user the Debian package creates (``runuser``), and its data
lives under /var/tmp (the root home is closed to other users); otherwise it runs as the caller in the
stack's state directory.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.endpoints import POSTGRES_ENV
from lineguard.stack.ports import pick_free_port
from schemas.errors import ConfigurationError, ServiceUnavailableError

USER = "lineguard"
PASSWORD = "lineguard"  # a local development server on 127.0.0.1 only
DATABASE = "lineguard"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]), None
    )
    if not found:
        raise ConfigurationError(
            f"PostgreSQL's {name} is not installed: apt-get install -y postgresql (or set {POSTGRES_ENV})"
        )
    return found


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """One local server: its directory (data, log, socket, state) and port."""

    home: Path
    port: int

    @property
    def uri(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run(_binary("pg_ctl"), "-D", str(self.data_dir), "status", check=False).returncode == 0

    def start(self, timeout_s: float = 60.0) -> None:
        """initdb on first use, then start and wait until it accepts connections."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.running():
            return
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.home} "
            "-c fsync=on -c max_connections=50 -c shared_buffers=64MB"
        )
        done = self._run(
            _binary("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
            "-w", "-t", str(int(timeout_s)), "start", check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-600:] if self.log_file.exists() else done.stderr
            raise ServiceUnavailableError(f"PostgreSQL did not start: {tail.strip()}")

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run(_binary("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def purge(self) -> None:
        """Stop and delete the data (tests' throw-away servers)."""
        self.stop(mode="immediate")
        shutil.rmtree(self.home, ignore_errors=True)

    def _initdb(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        password_file = self.home / "pwfile"
        password_file.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (self.home, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.home, 0o700)
        self._run(
            _binary("initdb"), "-D", str(self.data_dir), "-U", USER, f"--pwfile={password_file}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-instructions",
        )  # fmt: skip
        password_file.unlink()
        self._start_and_create_database()

    def _start_and_create_database(self) -> None:
        self.start()
        self._run(_binary("psql"), "-h", str(self.home), "-p", str(self.port), "-U", USER, "-d", "postgres",
                  "-c", f"CREATE DATABASE {DATABASE}")  # fmt: skip


def server_home(state_dir: Path) -> Path:
    """Where the server of a stack state directory lives (outside /root when running as root)."""
    if os.geteuid() != 0:
        return state_dir / "postgres"
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return Path("/var/tmp") / f"lineguard-postgres-{digest}"


def local_server(state_dir: Path, port: int | None = None) -> PostgresServer:
    """The server recorded for ``state_dir`` (same port as last time), or a new one on a free port."""
    home = server_home(state_dir)
    record = state_dir / "postgres.json"
    if port is None and record.exists():
        port = int(json.loads(record.read_text())["port"])
    server = PostgresServer(home=home, port=port or pick_free_port())
    state_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"port": server.port, "home": str(home), "uri": server.uri}))
    return server


def wait_until_down(server: PostgresServer, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while server.running() and time.monotonic() < deadline:
        time.sleep(0.1)
