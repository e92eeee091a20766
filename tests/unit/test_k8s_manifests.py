"""deploy/k8s renders, validates offline (Kubernetes, KEDA and Strimzi schemas) and agrees with the code."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from infra.settings import KafkaSettings
from lineguard.lag.cli import DEFAULT_PORT as LAG_PORT
from lineguard.lag.exporter import LagMetrics
from schemas.topics import FRAMES_TOPIC
from streams.settings import CameraSettings
from workers.metrics import HealthServer, WorkerMetrics
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


validator = _load(ROOT / "deploy" / "tools" / "validate_k8s.py")
capacity = _load(ROOT / "bench" / "capacity.py")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    kustomize = validator.find_kustomize()
    if not kustomize:
        if os.environ.get("CI"):
            pytest.fail("kustomize is missing: .ci/run installs it (deploy/tools/install-kustomize.sh)")
        pytest.skip("kustomize is not installed (deploy/tools/install-kustomize.sh)")
    return {target: validator.render(target, kustomize) for target in validator.TARGETS}


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _arg(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


def test_every_rendered_object_validates(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for target, objects in rendered.items():
        assert validator.problems(objects) == [], target
    kinds = {o["kind"] for o in rendered["overlays/strimzi"]}
    assert {"Deployment", "Service", "PodDisruptionBudget", "ScaledObject", "Kafka", "KafkaTopic"} <= kinds


def test_the_validator_rejects_broken_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    base = rendered["base"]
    deployment = copy.deepcopy(_one(base, "Deployment", "lineguard-worker"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/live"
    scaled = copy.deepcopy(_one(base, "ScaledObject", "lineguard-worker"))
    del scaled["spec"]["scaleTargetRef"]
    topic = copy.deepcopy(_one(rendered["overlays/strimzi"], "KafkaTopic", FRAMES_TOPIC))
    topic["spec"]["partitions"] = "twelve"
    assert len(validator.problems([deployment, scaled, topic])) == 3


def test_probes_and_ports_are_the_workers_own(rendered: dict[str, list[dict[str, Any]]]) -> None:
    base = rendered["base"]
    worker = _one(base, "Deployment", "lineguard-worker")
    container = _container(worker)
    port = int(_arg(container["args"], "--metrics-port"))
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    assert worker["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert _one(base, "Service", "lineguard-worker-metrics")["spec"]["ports"][0]["port"] == port
    paths = {
        container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert paths == {"/live", "/ready"}
    # the worker's real health server answers those paths (503 while not ready is an answer, 404 is not)
    server = HealthServer(WorkerMetrics(), "127.0.0.1", 0, lambda: True, lambda: False)
    try:
        for path in paths:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as reply:
                    status = reply.status
            except urllib.error.HTTPError as error:
                status = error.code
            assert status in (200, 503), path
    finally:
        server.close()
    lag = _container(_one(base, "Deployment", "lineguard-lag-exporter"))
    assert int(_arg(lag["args"], "--port")) == LAG_PORT == lag["ports"][0]["containerPort"]


def test_environment_names_are_settings_the_code_reads(rendered: dict[str, list[dict[str, Any]]]) -> None:
    base = rendered["base"]
    names = set(_one(base, "ConfigMap", "lineguard")["data"])
    for deployment in (o for o in base if o["kind"] == "Deployment"):
        names |= {env["name"] for env in _container(deployment).get("env", [])}
    prefixes = {
        "LINEGUARD_WORKER_": WorkerSettings.model_fields,
        "LINEGUARD_CAMERA_": CameraSettings.model_fields,
        "LINEGUARD_KAFKA_": KafkaSettings.model_fields,
    }
    known_plain = {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "LINEGUARD_LOG_FORMAT", "LINEGUARD_LOG_LEVEL"}
    known_plain |= set(_console_options().values())  # the console's options read their own variables
    for name in names:
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        if prefix is None:
            assert name in known_plain, name
        else:
            assert name[len(prefix) :].lower() in prefixes[prefix], name


def _console_options() -> dict[str, str]:
    """``lineguard console``'s option name -> environment variable."""
    import typer.main
    from typer.core import TyperOption

    from lineguard.console.cli import app as console_app

    command = typer.main.get_command(console_app)
    return {
        param.opts[0]: str(param.envvar)
        for param in command.params
        if isinstance(param, TyperOption) and param.envvar
    }


def test_the_console_runs_on_its_own_port_and_probe_path(rendered: dict[str, list[dict[str, Any]]]) -> None:
    import typer.main
    from pymongo import MongoClient
    from starlette.testclient import TestClient

    from lineguard.console.app import create_app
    from lineguard.console.cli import app as console_app

    base = rendered["base"]
    console = _one(base, "Deployment", "lineguard-console")
    container = _container(console)
    defaults = {param.name: param.default for param in typer.main.get_command(console_app).params}
    port = int(_arg(container["args"], "--port"))
    assert port == defaults["port"] == container["ports"][0]["containerPort"]
    assert _arg(container["args"], "--host") == "0.0.0.0"  # the pod's address, not loopback
    service = _one(base, "Service", "lineguard-console")["spec"]
    assert service["selector"] == console["spec"]["selector"]["matchLabels"]
    assert service["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert {env["name"] for env in container["env"]} <= set(_console_options().values())
    paths = {container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")}
    # the console's real app answers the probe paths without reaching MongoDB or Kafka (neither runs here)
    client_of_nothing: MongoClient[dict[str, Any]] = MongoClient(
        "mongodb://127.0.0.1:9", connect=False, serverSelectionTimeoutMS=100
    )
    database = client_of_nothing["probe"]
    web = create_app(database, {"bootstrap.servers": "127.0.0.1:9", "log_level": 0})
    client = TestClient(web)  # no `with`: the lifespan (indexes, live feed) needs the servers
    for path in paths:
        assert client.get(path).status_code == 200, path


def test_sizes_and_scaling_follow_the_capacity_model(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["overlays/strimzi"]
    config = _one(objects, "ConfigMap", "lineguard")["data"]
    scaled = _one(objects, "ScaledObject", "lineguard-worker")["spec"]
    partitions = _one(objects, "KafkaTopic", FRAMES_TOPIC)["spec"]["partitions"]
    assert scaled["maxReplicaCount"] == partitions == capacity.BASE_PARTITIONS
    assert (
        int(config["LINEGUARD_WORKER_TOPIC_PARTITIONS"])
        == int(config["LINEGUARD_CAMERA_PARTITIONS"])
        == partitions
    )
    kafka, prometheus = scaled["triggers"]
    assert kafka["type"] == "kafka" and prometheus["type"] == "prometheus"
    assert kafka["metadata"]["topic"] == FRAMES_TOPIC
    assert (
        kafka["metadata"]["consumerGroup"] == config["LINEGUARD_WORKER_GROUP_ID"] == WorkerSettings().group_id
    )
    assert kafka["metadata"]["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert int(kafka["metadata"]["lagThreshold"]) == capacity.LAG_THRESHOLD
    assert float(prometheus["metadata"]["threshold"]) == capacity.BACKLOG_SECONDS_THRESHOLD
    metric = re.match(r"max\((lineguard_[a-z_]+)\{", prometheus["metadata"]["query"])
    assert metric and metric.group(1) in {family.name for family in LagMetrics().registry.collect()}
    worker = _one(objects, "Deployment", "lineguard-worker")
    resources = _container(worker)["resources"]
    assert resources["requests"]["cpu"] == f"{capacity.WORKER_CPU_MILLICORES}m"
    assert resources["requests"]["memory"] == f"{capacity.WORKER_MEMORY_MI}Mi"
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert float(config["LINEGUARD_WORKER_DRAIN_TIMEOUT_S"]) < grace
    pdb = _one(objects, "PodDisruptionBudget", "lineguard-worker")["spec"]
    assert pdb["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]


def test_the_capacity_table_is_computed() -> None:
    assert int(capacity.PIPELINE_FPS * capacity.LATENCY_BUDGET_S) == capacity.LAG_THRESHOLD
    plan = capacity.plan(200)
    assert plan.workers * capacity.PIPELINE_FPS * capacity.TARGET_UTILISATION >= plan.fps
    assert plan.max_replicas == plan.partitions >= plan.workers
