"""The state file and stale-PID detection."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lineguard.stack.state import (
    KAFKA,
    MONGODB,
    ServiceState,
    StackState,
    cmdline_matches,
    is_running,
    read_state,
    state_file,
    write_state,
)


def _kafka(data_dir: str = "/tmp/s/kafka", pid: int | None = 1234) -> ServiceState:
    return ServiceState(
        name=KAFKA,
        host="127.0.0.1",
        port=41001,
        data_dir=data_dir,
        log_file="/tmp/s/logs/kafka.log",
        program="kafka",
        pid=pid,
        started_at=1.5,
        extra_ports={"controller": 41002},
    )


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    mongo = ServiceState(MONGODB, "127.0.0.1", 41003, "/tmp/s/ferretdb", "/tmp/s/logs/mongo.log", "ferretdb")
    state = StackState().with_service(_kafka()).with_service(mongo)

    write_state(tmp_path, state)

    assert read_state(tmp_path) == state
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".state-")]  # no temp file left


def test_missing_or_corrupt_state_reads_as_empty(tmp_path: Path) -> None:
    assert read_state(tmp_path / "nowhere") == StackState()
    state_file(tmp_path).write_text("{not json")
    assert read_state(tmp_path) == StackState()
    state_file(tmp_path).write_text('{"version": 99, "services": {}}')
    assert read_state(tmp_path) == StackState()


def test_stopped_service_keeps_ports_and_data_but_no_pid() -> None:
    stopped = _kafka().stopped()

    assert stopped.pid is None and stopped.started_at is None
    assert (stopped.port, stopped.extra_ports) == (41001, {"controller": 41002})
    assert stopped.data_dir == "/tmp/s/kafka"
    assert not is_running(stopped)


def test_cmdline_must_name_the_program_and_the_service_data_dir() -> None:
    service = _kafka(data_dir="/tmp/s/kafka")
    broker = ["java", "-Xmx512m", "-cp", "/c/libs/*", "kafka.Kafka", "/tmp/s/kafka/server.properties"]

    assert cmdline_matches(broker, service)
    assert not cmdline_matches([*broker[:-1], "/tmp/other/kafka/server.properties"], service)
    assert not cmdline_matches(["python", "/tmp/s/kafka/x.py"], service)
    ferret = ServiceState(MONGODB, "127.0.0.1", 1, "/tmp/s/ferretdb", "log", "ferretdb", pid=1)
    assert cmdline_matches(["/c/ferretdb-v1.24.2/ferretdb", "--state-dir=/tmp/s/ferretdb"], ferret)
    assert not cmdline_matches(["/usr/bin/sleep", "--state-dir=/tmp/s/ferretdb"], ferret)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="PID identity checks read /proc")
def test_a_killed_process_is_detected_as_stale(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "kafka")
    # A stand-in whose command line looks like our broker: the check is about the process, not Java.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", f"{data_dir}/server.properties"]
    )
    try:
        service = _kafka(data_dir=data_dir, pid=child.pid)
        assert is_running(service)
        assert not is_running(_kafka(data_dir=str(tmp_path / "elsewhere"), pid=child.pid))  # PID reused
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert not is_running(service)
    finally:
        child.kill()
        child.wait(10)
