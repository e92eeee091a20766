"""A ``python -m workers`` subprocess for the phases that need one: its topics and database, its CPU time
and RSS, the cores the stack and this process use, and waiting until its consumer group has settled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.demo.tally import DemoTally
from lineguard.demo.watch import wait_for_assignment
from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from workerbench.common import MAX_BATCH_SIZE, MAX_WAIT_MS, PARTITIONS, REPO_ROOT


class BenchWorker:
    """``python -m workers`` on a set of topics, with its log under the bench cache directory."""

    def __init__(
        self,
        endpoints: Endpoints,
        topics: TopicNames,
        database: str,
        model: Path,
        log_dir: Path,
        group: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.group = group or f"bench-workers-{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"worker-{self.group}.log"
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
                "MONGODB_URI": endpoints.mongodb_uri,
                "LINEGUARD_MONGODB_DATABASE": database,
                "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
                "LINEGUARD_WORKER_RESULTS_TOPIC": topics.results,
                "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": topics.defect_events,
                "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": topics.dead_letters,
                "LINEGUARD_WORKER_GROUP_ID": self.group,
                "LINEGUARD_WORKER_MODEL": str(model),
                "LINEGUARD_WORKER_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE),
                "LINEGUARD_WORKER_MAX_WAIT_MS": str(MAX_WAIT_MS),
                "LINEGUARD_WORKER_SESSION_TIMEOUT_MS": "10000",
                **(extra_env or {}),
            }
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers"],
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, kafka_config: dict[str, Any], topic: str, timeout_s: float = 120.0) -> None:
        alive = lambda: self.process.poll() is None  # noqa: E731
        if not wait_for_assignment(kafka_config, self.group, topic, timeout_s, alive=alive):
            raise RuntimeError(f"worker did not start; see {self.log_path}")

    def cpu_s(self) -> float | None:
        """User + system CPU seconds the worker has used so far (all threads)."""
        return process_cpu_s(self.process.pid)

    def peak_rss_mb(self) -> float | None:
        return _status_kb(self.process.pid, "VmHWM")

    def rss_mb(self) -> float | None:
        return _status_kb(self.process.pid, "VmRSS")

    def stop(self, timeout_s: float = 60.0) -> tuple[int, float]:
        """SIGTERM and wait: (exit code, seconds to exit)."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode, time.monotonic() - started


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used so far (all threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares:
    """Cores each process on this machine used over a phase: the worker, the local stack's broker and
    database (when the endpoints are the local stack's), and this benchmark process (publisher, watcher).
    On a small machine they all share the cores, so the shares say how much of it the worker had."""

    def __init__(self, endpoints: Endpoints, worker: BenchWorker) -> None:
        self._pids = {"worker": worker.process.pid, "bench client": os.getpid()}
        self._pids.update(_local_stack_pids(endpoints))
        self._started = time.monotonic()
        self._before = {name: process_cpu_s(pid) for name, pid in self._pids.items()}

    def cores(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started
        shares = {}
        for name, pid in self._pids.items():
            before, now = self._before[name], process_cpu_s(pid)
            if before is not None and now is not None and elapsed > 0:
                shares[name] = (now - before) / elapsed
        return shares


def _local_stack_pids(endpoints: Endpoints) -> dict[str, int]:
    """PIDs of the local stack's services that these endpoints point at (none for an external cluster)."""
    from lineguard.stack.endpoints import default_state_dir
    from lineguard.stack.state import read_state

    pids = {}
    for service in read_state(default_state_dir()).services.values():
        used = endpoints.kafka_bootstrap if service.name == "kafka" else endpoints.mongodb_uri
        if service.pid is not None and f"{service.host}:{service.port}" in used:
            pids[service.name] = service.pid
    return pids


def _status_kb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


@dataclass
class Deployment:
    """Topics and a database of one phase, removed afterwards."""

    kafka_config: dict[str, Any]
    endpoints: Endpoints
    topics: TopicNames
    database: str

    @classmethod
    def create(cls, endpoints: Endpoints, name: str) -> Deployment:
        prefix = f"bench.{name}.{uuid.uuid4().hex[:8]}"
        topics = TopicNames.with_prefix(prefix)
        config = endpoints.kafka_config()
        ensure_topics(config, _all(topics), partitions=PARTITIONS)
        return cls(config, endpoints, topics, f"bench_{name}_{uuid.uuid4().hex[:8]}")

    def remove(self) -> None:
        from pymongo import MongoClient

        delete_topics(self.kafka_config, _all(self.topics))
        client: Any = MongoClient(self.endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
        try:
            client.drop_database(self.database)
        finally:
            client.close()


def _all(topics: TopicNames) -> list[str]:
    return [topics.frames, topics.results, topics.defect_events, topics.dead_letters, warm_up_topic(topics)]


def warm_up_topic(topics: TopicNames) -> str:
    return f"{topics.frames}.warm-up"


@dataclass(frozen=True, slots=True)
class Settled:
    """What the worker used from its first result to the last: CPU seconds, frames, and the cores each
    process used meanwhile (model loading and the group join excluded)."""

    worker_cpu_s: float
    frames: int
    cores: dict[str, float]


def wait_settled(
    tally: DemoTally, expected: int, timeout_s: float, worker: BenchWorker, endpoints: Endpoints
) -> Settled | None:
    """Wait until ``expected`` frames are settled; None when /proc cannot tell what the worker used."""
    deadline = time.monotonic() + timeout_s
    last = (-1, time.monotonic())
    first: tuple[float, int] | None = None
    shares: CpuShares | None = None
    while tally.settled < expected:
        if first is None and tally.settled > 0:
            cpu = worker.cpu_s()
            first = (cpu, tally.settled) if cpu is not None else None
            shares = CpuShares(endpoints, worker)
        now = time.monotonic()
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited ({worker.process.returncode}); see {worker.log_path}")
        if tally.settled != last[0]:
            last = (tally.settled, now)
        elif now - last[1] > 60 or now > deadline:
            raise RuntimeError(f"only {tally.settled} of {expected} results; see {worker.log_path}")
        time.sleep(0.2)
    cpu = worker.cpu_s()
    if first is None or shares is None or cpu is None or tally.settled <= first[1]:
        return None
    return Settled(cpu - first[0], tally.settled - first[1], shares.cores())
