"""docker-compose.yml stays a valid, self-consistent description of the system."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lineguard.stack.kafka import BROKER_MESSAGE_MAX_BYTES
from lineguard.stack.settings import StackSettings
from streams.settings import CameraSettings
from workers.settings import WorkerSettings

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


def _render(*files: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The configuration `docker compose config` renders: merged, interpolated and validated by Compose."""
    have_compose = shutil.which("docker") is not None and (
        subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    )
    if not have_compose:
        if os.environ.get("CI"):
            pytest.fail("docker compose is missing: .ci/run installs it (deploy/tools/install-compose.sh)")
        pytest.skip("docker compose is not installed (deploy/tools/install-compose.sh)")
    command = ["docker", "compose", "--project-directory", str(ROOT)]
    for name in files:
        command += ["-f", str(ROOT / name)]
    done = subprocess.run(
        [*command, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    assert isinstance(rendered, dict)
    return rendered


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    return _render("docker-compose.yml")


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return {volume["target"]: volume["source"] for volume in service.get("volumes", [])}


def test_kafka_keeps_its_log_in_the_volume_and_runs_the_local_stacks_version(
    rendered: dict[str, Any],
) -> None:
    kafka = rendered["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert _mounts(kafka)[log_dirs] == "kafka-data"
    assert kafka["image"] == f"apache/kafka:{StackSettings().kafka_version}"


def test_the_camera_spools_into_a_volume(rendered: dict[str, Any]) -> None:
    camera = rendered["services"]["camera"]
    spool = Path(camera["environment"]["LINEGUARD_CAMERA_SPOOL_DIR"])
    mounts = _mounts(camera)
    mounted = [target for target in mounts if spool.is_relative_to(target)]
    assert mounted and mounts[mounted[0]] == "camera-spool"
    assert "spool_dir" in CameraSettings.model_fields


def test_workers_scale_without_host_ports(rendered: dict[str, Any]) -> None:
    worker = rendered["services"]["worker"]
    assert "ports" not in worker  # --scale worker=3 would collide on a fixed host port
    command = worker["command"]
    port = command[command.index("--metrics-port") + 1]
    assert port in {str(p) for p in worker["expose"]}
    assert port in str(worker["healthcheck"]["test"])
    partitions = int(worker["environment"]["LINEGUARD_WORKER_TOPIC_PARTITIONS"])
    assert "topic_partitions" in WorkerSettings.model_fields and partitions >= 8
    camera = rendered["services"]["camera"]["command"]
    assert int(camera[camera.index("--partitions") + 1]) == partitions
    # a drain (LINEGUARD_WORKER_DRAIN_TIMEOUT_S) fits inside the stop grace period
    grace_s = float(worker["stop_grace_period"].rstrip("s"))
    assert WorkerSettings.model_fields["drain_timeout_s"].default < grace_s


def test_clients_use_confluent_framing_through_the_registry(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    for name in ("camera", "worker", "lag-exporter"):
        assert services[name]["environment"]["LINEGUARD_SCHEMA_REGISTRY_URL"] == "http://schema-registry:8081"
    assert "schema-registry" in services["camera"]["depends_on"]
    assert "schema-registry" in services["worker"]["depends_on"]
    registry = services["schema-registry"]
    assert registry["environment"]["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"] == "PLAINTEXT://kafka:9092"


def test_prometheus_and_grafana_are_provisioned_from_the_repository(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    prometheus = _mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == str(ROOT / "deploy/monitoring/prometheus.yml")
    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == str(ROOT / "deploy/monitoring/grafana/provisioning")
    assert grafana["/var/lib/grafana/dashboards"] == str(ROOT / "deploy/monitoring/grafana/dashboards")
    assert services["lag-exporter"]["command"][0] == "lag"


def test_the_secure_override_needs_passwords_and_closes_the_plaintext_ports() -> None:
    secrets = {"LINEGUARD_KAFKA_PASSWORD": "kafka-pw", "LINEGUARD_MONGODB_PASSWORD": "mongo-pw"}
    secure = _render("docker-compose.yml", "docker-compose.secure.yml", env=secrets)
    services = secure["services"]
    assert [port["target"] for port in services["kafka"]["ports"]] == [9094]
    assert "ports" not in services["mongodb"]
    assert services["mongodb"]["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == "mongo-pw"
    kafka_env = services["kafka"]["environment"]
    assert "SASL_SSL://:9094" in kafka_env["KAFKA_LISTENERS"]
    assert "HOST" not in kafka_env["KAFKA_LISTENERS"]
    assert 'user_lineguard="kafka-pw"' in kafka_env["KAFKA_LISTENER_NAME_SASL__SSL_PLAIN_SASL_JAAS_CONFIG"]
    kafka_clients = [
        name for name, s in services.items() if "KAFKA_BOOTSTRAP_SERVERS" in s.get("environment", {})
    ]
    assert {"camera", "worker", "lag-exporter"} <= set(kafka_clients)
    for name in kafka_clients:  # every Kafka client, also services others add (e.g. the sinks)
        env = services[name]["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9094", name
        assert env["LINEGUARD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["MONGODB_URI"].startswith("mongodb://lineguard:mongo-pw@mongodb:27017/")
        assert "/run/lineguard-secrets" in _mounts(services[name])
