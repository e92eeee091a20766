"""A worker as a separate process (``python -m workers``), so it can be SIGKILLed like a crashed pod and its
unplanned exits can be told apart from the kills the harness ordered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What the harness sets through ``LINEGUARD_WORKER_*`` (the same settings production uses)."""

    topics: TopicNames
    group_id: str
    model: Path
    mongo_database: str
    worker_id: str
    exactly_once: bool = False
    max_message_bytes: int | None = None
    max_image_pixels: int | None = None
    session_timeout_ms: int = 6000
    extra: dict[str, str] = field(default_factory=dict)

    def environment(self, endpoints: Endpoints) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
                "MONGODB_URI": endpoints.mongodb_uri,
                "LINEGUARD_MONGODB_DATABASE": self.mongo_database,
                "LINEGUARD_WORKER_FRAMES_TOPIC": self.topics.frames,
                "LINEGUARD_WORKER_RESULTS_TOPIC": self.topics.results,
                "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": self.topics.defect_events,
                "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": self.topics.dead_letters,
                "LINEGUARD_WORKER_GROUP_ID": self.group_id,
                "LINEGUARD_WORKER_WORKER_ID": self.worker_id,
                "LINEGUARD_WORKER_MODEL": str(self.model),
                "LINEGUARD_WORKER_EXACTLY_ONCE": "true" if self.exactly_once else "false",
                "LINEGUARD_WORKER_SESSION_TIMEOUT_MS": str(self.session_timeout_ms),
                "LINEGUARD_WORKER_MAX_BATCH_SIZE": "16",
                "LINEGUARD_WORKER_MAX_WAIT_MS": "20",
                "LINEGUARD_WORKER_DECODE_THREADS": "2",
                "LINEGUARD_WORKER_INFERENCE_THREADS": "1",
                "LINEGUARD_WORKER_COMMIT_INTERVAL_MS": "200",
                "PYTHONPATH": str(REPO_ROOT),
            }
        )
        if self.max_message_bytes is not None:
            env["LINEGUARD_WORKER_MAX_MESSAGE_BYTES"] = str(self.max_message_bytes)
        if self.max_image_pixels is not None:
            env["LINEGUARD_WORKER_MAX_IMAGE_PIXELS"] = str(self.max_image_pixels)
        env.update(self.extra)
        return env


class WorkerProcess:
    """Starts, kills and restarts one worker; counts exits the harness did not cause."""

    def __init__(self, options: WorkerOptions, endpoints: Endpoints, log_path: Path) -> None:
        self.options = options
        self._env = options.environment(endpoints)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.unplanned_exits: list[int] = []  # exit codes of exits nobody asked for

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed when we close
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "workers"],
                env=self._env,
                cwd=REPO_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        finally:
            log.close()
        self.starts += 1

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def check(self) -> int | None:
        """If the worker exited on its own, record it and return its exit code (the caller may restart)."""
        if self._process is None:
            return None
        code = self._process.poll()
        if code is None:
            return None
        self.unplanned_exits.append(code)
        self._process = None
        return code

    def kill(self) -> None:
        """SIGKILL, like a node failure: no drain, no commit."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(30)
            self.kills += 1
        self._process = None

    def terminate(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM and wait for the drain; returns the exit code (None if it had to be killed)."""
        process = self._process
        if process is None:
            return None
        self._process = None
        if process.poll() is not None:
            return process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_for(predicate: object, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s``; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval_s)
    return False
