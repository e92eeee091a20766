"""The demo's worker: a real ``python -m workers`` process, configured through its environment.

It is started through :mod:`lineguard.demo.worker_child` (so it also stops when the demo process dies) in its
own session, so that Ctrl-C reaches only the demo, which then stops it with SIGTERM (drain and commit) once
the camera has stopped and what was published is inspected.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lineguard.demo.options import DemoOptions
from lineguard.demo.watch import wait_for_assignment
from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV, Endpoints
from schemas.errors import LineguardError

log = logging.getLogger(__name__)

_WORKER_STOP_TIMEOUT_S = 40.0  # SIGTERM grace (the worker drains within its own 20 s bound) before SIGKILL


class DemoWorker:
    """One worker process of a demo run: start, wait until it joined its group, explain a failure, stop."""

    def __init__(self, options: DemoOptions, endpoints: Endpoints, log_path: Path) -> None:
        self.options = options
        self.endpoints = endpoints
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def environment(self, model_path: Path) -> dict[str, str]:
        """The demo process's environment plus the worker settings of this run."""
        options, topics = self.options, self.options.topics
        env = dict(os.environ)
        env.update(
            {
                KAFKA_ENV: self.endpoints.kafka_bootstrap,
                MONGODB_ENV: self.endpoints.mongodb_uri,
                "LINEGUARD_MONGODB_DATABASE": options.database,
                "LINEGUARD_WORKER_MONGO_COLLECTION": options.collection,
                "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
                "LINEGUARD_WORKER_RESULTS_TOPIC": topics.results,
                "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": topics.defect_events,
                "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": topics.dead_letters,
                "LINEGUARD_WORKER_GROUP_ID": options.group_id,
                "LINEGUARD_WORKER_MODEL": str(model_path),
                "LINEGUARD_WORKER_MAX_BATCH_SIZE": str(options.max_batch_size),
                "LINEGUARD_WORKER_MAX_WAIT_MS": str(options.max_wait_ms),
                # A demo worker that was killed must not hold its partitions for the default 45 s.
                "LINEGUARD_WORKER_SESSION_TIMEOUT_MS": "10000",
                "LINEGUARD_WORKER_COMMIT_INTERVAL_MS": "200",
                "LINEGUARD_DEMO_PARENT_PID": str(os.getpid()),
            }
        )
        return env

    def start(self, model_path: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lineguard.demo.worker_child"],
                env=self.environment(model_path),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to the demo, which stops the worker in order
            )

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def await_assignment(self, kafka_config: dict[str, Any]) -> None:
        """Block until the worker joined its consumer group; a LineguardError when it did not in time."""
        ready = wait_for_assignment(
            kafka_config,
            self.options.group_id,
            self.options.topics.frames,
            self.options.worker_start_timeout_s,
            alive=self.alive,
        )
        if not ready:
            raise LineguardError(self.problem("did not join its consumer group in time"))

    def problem(self, what: str) -> str:
        """One message on what went wrong: its exit code when it exited, and the tail of its log."""
        code = self._process.poll() if self._process is not None else None
        state = f"exited with code {code}" if code is not None else what
        tail = _tail(self.log_path, 8)
        return f"the worker {state}; its log is {self.log_path}" + (f":\n{tail}" if tail else "")

    def stop(self) -> int | None:
        """SIGTERM (drain and commit), SIGKILL after the grace or on a second Ctrl-C; the exit code."""
        worker = self._process
        if worker is None:
            return None
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=_WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("the worker did not stop within %.0f s; killing it", _WORKER_STOP_TIMEOUT_S)
                worker.kill()
                worker.wait()
            except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the drain
                worker.kill()
                worker.wait()
        return worker.returncode


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
