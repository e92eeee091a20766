"""resolve_endpoints: environment variables win, else the running local stack, else one clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lineguard.stack.endpoints import resolve_endpoints
from lineguard.stack.state import MONGODB, ServiceState, StackState, write_state
from schemas.errors import ConfigurationError

BOTH = {"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092", "MONGODB_URI": "mongodb://db:27017/"}


def test_environment_variables_win(tmp_path: Path) -> None:
    endpoints = resolve_endpoints(env=BOTH, state_dir=tmp_path)

    assert endpoints.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    assert endpoints.mongodb_uri == "mongodb://db:27017/"
    assert endpoints.kafka_config() == {"bootstrap.servers": "kafka-1:9092,kafka-2:9092"}


def test_without_variables_or_stack_the_error_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"lineguard stack up"):
        resolve_endpoints(env={}, state_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="MONGODB_URI"):
        resolve_endpoints(env={"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}, state_dir=tmp_path)


def test_a_recorded_but_dead_stack_is_not_used(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    data_dir = str(tmp_path / "ferretdb")
    service = ServiceState(MONGODB, "127.0.0.1", 41003, data_dir, "log", "ferretdb", pid=dead.pid)
    write_state(tmp_path, StackState().with_service(service))

    with pytest.raises(ConfigurationError, match="not running"):
        resolve_endpoints(env={"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}, state_dir=tmp_path)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="PID identity checks read /proc")
def test_a_running_stack_supplies_what_the_environment_does_not(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "ferretdb")
    # A stand-in process that looks like our FerretDB: argv[0] ends in "ferretdb" and names the data dir.
    argv = [str(tmp_path / "ferretdb"), "-c", "import time; time.sleep(60)", f"--state-dir={data_dir}"]
    child = subprocess.Popen(argv, executable=sys.executable)
    try:
        service = ServiceState(MONGODB, "127.0.0.1", 41003, data_dir, "log", "ferretdb", pid=child.pid)
        write_state(tmp_path, StackState().with_service(service))

        endpoints = resolve_endpoints(env={"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}, state_dir=tmp_path)
    finally:
        child.kill()
        child.wait(10)

    assert endpoints.kafka_bootstrap == "k:9092"
    assert endpoints.mongodb_uri == "mongodb://127.0.0.1:41003/"
