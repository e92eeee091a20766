"""docker-compose.yml stays a valid, self-consistent description of the system."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lineguard.stack.kafka import BROKER_MESSAGE_MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "mongodb", "camera", "worker"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_servers_have_healthchecks_and_clients_wait_for_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "mongodb"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("camera", "worker"):
        depends = services[name]["depends_on"]
        assert depends["kafka"] == {"condition": "service_healthy"}
        for dependency, rule in depends.items():
            assert dependency in services
            assert rule["condition"] == "service_healthy"
            assert "healthcheck" in services[dependency]


def test_clients_reach_the_servers_by_service_name(compose: dict[str, Any]) -> None:
    for name in ("camera", "worker"):
        env = compose["services"][name]["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["MONGODB_URI"].startswith("mongodb://mongodb:27017")
    worker_command = compose["services"]["worker"]["command"]
    camera_command = compose["services"]["camera"]["command"]
    assert worker_command[0] == "worker"
    assert camera_command[:3] == ["camera", "--source", "synthetic"]


def test_kafka_is_apache_kafka_in_kraft_mode_with_the_launchers_size_limits(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) == BROKER_MESSAGE_MAX_BYTES
    assert int(env["KAFKA_REPLICA_FETCH_MAX_BYTES"]) >= BROKER_MESSAGE_MAX_BYTES
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in advertised


def test_the_image_build_context_has_what_the_dockerfile_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def test_the_image_copies_every_package_that_pyproject_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    copied = {line.split()[1] for line in dockerfile if line.startswith("COPY ")}
    assert {pattern.rstrip("*") for pattern in patterns} <= copied
