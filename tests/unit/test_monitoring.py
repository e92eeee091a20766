"""The Grafana dashboard and the Prometheus scrape config agree with the metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from lineguard.lag.cli import DEFAULT_PORT as LAG_PORT
from lineguard.lag.exporter import LagMetrics
from workers.metrics import WorkerMetrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def _exported(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry can expose (a labelled family has no samples until first used)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _dashboard() -> dict[str, Any]:
    document = json.loads((MONITORING / "grafana" / "dashboards" / "lineguard.json").read_text())
    assert isinstance(document, dict)
    return document


def _queries() -> list[str]:
    return [target["expr"] for panel in _dashboard()["panels"] for target in panel["targets"]]


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = _exported(WorkerMetrics().registry) | _exported(LagMetrics().registry)
    queried = {name for expr in _queries() for name in re.findall(r"\blineguard_[a-z0-9_]+", expr)}
    assert len(queried) >= 12
    assert queried - exported == set()


def test_the_dashboard_covers_what_a_plant_watches() -> None:
    text = " ".join(_queries())
    for needle in (
        "line_results_total",
        "line_defects_total",
        "_bucket",
        "lag_backlog_seconds",
        "dead_letters_total",
        "model_info",
        "line_silent",
    ):
        assert needle in text, needle
    # latency panels are histogram quantiles (aggregatable across workers), never summaries
    assert "histogram_quantile" in text


def test_the_datasource_the_dashboard_names_is_provisioned() -> None:
    provisioned = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uids = {source["uid"] for source in provisioned["datasources"]}
    used = {panel["datasource"]["uid"] for panel in _dashboard()["panels"]}
    assert used <= uids


def test_prometheus_scrapes_the_ports_the_services_listen_on() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    compose = yaml.safe_load((MONITORING.parents[1] / "docker-compose.yml").read_text())
    services = compose["services"]
    worker_port = int(
        services["worker"]["command"][services["worker"]["command"].index("--metrics-port") + 1]
    )
    assert jobs["lineguard-workers"]["dns_sd_configs"][0] == {
        "names": ["worker"],
        "type": "A",
        "port": worker_port,
    }
    lag_command = services["lag-exporter"]["command"]
    assert lag_command[0] == "lag" and int(lag_command[lag_command.index("--port") + 1]) == LAG_PORT
    assert jobs["lineguard-lag"]["static_configs"][0]["targets"] == [f"lag-exporter:{LAG_PORT}"]
    camera = services["camera"]["command"]
    camera_port = int(camera[camera.index("--metrics-port") + 1])
    assert jobs["lineguard-cameras"]["dns_sd_configs"][0]["port"] == camera_port
