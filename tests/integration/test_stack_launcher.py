"""`lineguard stack` end to end, in a state directory of its own: up prints addresses, status tells the
truth after the broker is killed with SIGKILL, a single service restarts on its old port, down leaves no
process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV
from lineguard.stack.launcher import Health, LocalStack
from lineguard.stack.settings import StackSettings
from lineguard.stack.state import KAFKA, MONGODB, is_running, read_state

pytestmark = pytest.mark.integration


def _lineguard(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "stack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    result = _lineguard(env, "status", "--json")
    return {entry["service"]: {**entry, "exit": result.returncode} for entry in json.loads(result.stdout)}


def _api(env: dict[str, str]) -> LocalStack:
    return LocalStack(StackSettings(state_dir=Path(env["LINEGUARD_STACK_STATE_DIR"])))


@pytest.fixture
def private_stack_env(tmp_path: Path) -> Any:
    """Environment for a second, private stack: own state dir, shared jar/binary cache, no overrides."""
    env = {k: v for k, v in os.environ.items() if k not in (KAFKA_ENV, MONGODB_ENV)}
    env["LINEGUARD_STACK_STATE_DIR"] = str(tmp_path / "stack")
    yield env
    _lineguard(env, "down")  # whatever the test did, leave nothing running


def test_status_after_kill_9_restart_and_clean_down(private_stack_env: dict[str, str]) -> None:
    env = private_stack_env
    state_dir = Path(env["LINEGUARD_STACK_STATE_DIR"])

    up = _lineguard(env, "up")
    assert up.returncode == 0, up.stderr
    state = read_state(state_dir)
    kafka, mongo = state.services[KAFKA], state.services[MONGODB]
    assert f"export {KAFKA_ENV}={kafka.address}" in up.stdout
    assert f"export {MONGODB_ENV}=mongodb://{mongo.address}/" in up.stdout
    assert {s.health for s in _api(env).status()} == {Health.running}

    assert kafka.pid is not None
    os.kill(kafka.pid, signal.SIGKILL)
    _wait_until(lambda: not is_running(kafka))

    after_crash = _status(env)
    assert after_crash[KAFKA]["health"] == "crashed"
    assert str(kafka.pid) in after_crash[KAFKA]["detail"]
    assert after_crash[MONGODB]["health"] == "running"
    assert after_crash[KAFKA]["exit"] == 1

    restarted = _lineguard(env, "up", "--service", "kafka")
    assert restarted.returncode == 0, restarted.stderr
    new_kafka = read_state(state_dir).services[KAFKA]
    assert new_kafka.port == kafka.port and new_kafka.pid != kafka.pid  # same address, new process
    assert _api(env).status([KAFKA])[0].health is Health.running

    down = _lineguard(env, "down")
    assert down.returncode == 0, down.stderr
    final = read_state(state_dir)
    for service in (new_kafka, mongo):
        assert not is_running(service)
        assert final.services[service.name].pid is None
    assert {s["health"] for s in _status(env).values()} == {"stopped"}
    assert not _processes_mentioning(str(state_dir))


def test_two_concurrent_ups_start_one_stack(private_stack_env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "lineguard.cli", "stack", "up", "--service", "kafka"]
    ups = [
        subprocess.Popen(command, env=private_stack_env, stdout=PIPE, stderr=PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [up.communicate(timeout=180) for up in ups]

    assert [up.returncode for up in ups] == [0, 0], outputs
    assert sum("kafka was already running" in stderr for _stdout, stderr in outputs) == 1
    assert outputs[0][0] == outputs[1][0]  # both print the same address
    state_dir = private_stack_env["LINEGUARD_STACK_STATE_DIR"]
    brokers = [pid for pid in _processes_mentioning(state_dir) if b"kafka.Kafka" in _cmdline(pid)]
    assert brokers == [read_state(Path(state_dir)).services[KAFKA].pid]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (zombies excluded)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(proc.name))
    return found


def _wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
