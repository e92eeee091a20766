"""The local stack's state file: which services run, on which ports, under which PIDs.

The file is the single source of truth that ``lineguard stack status``, ``resolve_endpoints()`` and the
integration fixtures read. It records ports and data directories even while a service is stopped, so that
restarting one service (``lineguard stack up --service kafka``) gets the same address and the same data back.
A PID is only trusted after checking that the process still exists *and* still runs the expected program:
after ``kill -9`` and PID reuse, a recorded PID can name an unrelated process.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

STATE_FILE_NAME = "state.json"
STATE_FORMAT_VERSION = 1

KAFKA = "kafka"
MONGODB = "mongodb"
SERVICES: tuple[str, ...] = (KAFKA, MONGODB)


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One service of the stack as last recorded. ``pid`` is None when the launcher stopped it."""

    name: str
    host: str
    port: int
    data_dir: str
    log_file: str
    program: str  # "kafka", "mongod" or "ferretdb": what the process must be running to count as ours
    pid: int | None = None
    started_at: float | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)  # e.g. {"controller": 29093}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stopped(self) -> ServiceState:
        return replace(self, pid=None, started_at=None)


@dataclass(frozen=True, slots=True)
class StackState:
    """All services the launcher knows about, keyed by service name."""

    services: dict[str, ServiceState] = field(default_factory=dict)

    def with_service(self, service: ServiceState) -> StackState:
        return StackState(services={**self.services, service.name: service})

    def to_json(self) -> str:
        payload = {
            "version": STATE_FORMAT_VERSION,
            "services": {name: asdict(svc) for name, svc in sorted(self.services.items())},
        }
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackState:
        payload: dict[str, Any] = json.loads(text)
        if payload.get("version") != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported state file version {payload.get('version')!r}")
        services = {name: ServiceState(**raw) for name, raw in payload.get("services", {}).items()}
        return cls(services=services)


def state_file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE_NAME


def read_state(state_dir: Path) -> StackState:
    """The recorded state, or an empty one when the stack never ran here (or the file is unreadable)."""
    path = state_file(state_dir)
    try:
        return StackState.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return StackState()
    except (ValueError, TypeError) as exc:  # a corrupt file must not wedge the launcher: start from scratch
        import logging

        logging.getLogger(__name__).warning("ignoring unreadable stack state file %s: %s", path, exc)
        return StackState()


def write_state(state_dir: Path, state: StackState) -> None:
    """Replace the state file atomically, so a reader never sees half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(state.to_json())
        os.replace(tmp, state_file(state_dir))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of a live process, or None if there is no such process (or it is a zombie)."""
    for _ in range(20):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # no such process (or not ours to read)
            return None
        if raw:
            return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]
        # Empty: a zombie, or a process caught in the middle of exec(), which reads empty for an instant.
        if _process_state(pid) in (None, "Z", "X"):
            return None
        time.sleep(0.01)
    return None


def _process_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat (R, S, Z, ...), or None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]  # the command name in (...) may itself contain spaces


def _proc_available() -> bool:
    return Path("/proc/self/cmdline").exists()


def is_running(service: ServiceState) -> bool:
    """True when the recorded PID is alive and runs this service's program (stale PIDs are detected)."""
    if service.pid is None:
        return False
    if not _proc_available():  # not Linux: fall back to "a process with that PID exists"
        try:
            os.kill(service.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    argv = process_cmdline(service.pid)
    if argv is None:
        return False
    return cmdline_matches(argv, service)


def cmdline_matches(argv: list[str], service: ServiceState) -> bool:
    """Does this argv belong to the service? Checked by program and by the service's own data directory."""
    joined = " ".join(argv)
    if service.program == "kafka":
        return "kafka.Kafka" in joined and service.data_dir in joined
    if service.program in ("ferretdb", "mongod"):
        return service.program in os.path.basename(argv[0]) and service.data_dir in joined
    return False
