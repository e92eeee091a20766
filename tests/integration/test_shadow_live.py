"""A shadow worker on live frames beside a production worker: the candidate inspects every frame into its own
topic and collection, production's outputs and committed offsets are exactly what they would be alone."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.records import DefectEvent, InspectionResult
from schemas.topics import TopicNames
from tests.integration.shadow_support import (
    MODEL,
    mongo,
    registry_with,
    shadow_topics_cleaned,
    worker_settings,
)
from tests.integration.test_workers_pipeline import RunningWorker
from tests.integration.test_workers_support import (
    committed_offsets,
    decoder,
    end_offsets,
    make_frames,
    produce_frames,
    read_topic,
    wait_for,
)
from workers.pipeline import Worker
from workers.shadow.config import SHADOW_COLLECTION, resolve_candidate, shadow_group, shadow_settings
from workers.shadow.run import ShadowTarget, shadow_worker

pytestmark = pytest.mark.integration


def test_shadow_beside_production_leaves_production_outputs_and_offsets_untouched(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    registry = registry_with(model_dir, tmp_path)
    production_group = f"prod-{uuid.uuid4().hex[:8]}"
    production = worker_settings(topics, production_group, model_dir)
    candidate = resolve_candidate(registry, MODEL, "t2", "line-1")
    shadow = shadow_settings(
        production.model_copy(update={"auto_offset_reset": "latest"}),
        candidate,
        shadow_group(MODEL, f"t2-{uuid.uuid4().hex[:6]}", replay=False),
    )
    frames = make_frames(60)
    later = make_frames(90)[60:]  # 30 more frames, numbered after the first 60
    with shadow_topics_cleaned(kafka_config, topics) as shadow_names:
        prod_run = RunningWorker(Worker(production, endpoints=endpoints, mongo=mongo(mongo_db.name)))
        shadow_run = RunningWorker(
            shadow_worker(shadow, ShadowTarget(), endpoints=endpoints, mongo=mongo(mongo_db.name))
        )
        try:
            assert prod_run.worker.wait_started(120) and shadow_run.worker.wait_started(120)
            wait_for(lambda: len(shadow_run.worker.assignment) == 3, 60, "the shadow worker's partitions")
            produce_frames(kafka_config, topics.frames, frames)
            results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=60)
            wait_for(lambda: mongo_db[SHADOW_COLLECTION].count_documents({}) >= 60, 60, "shadow documents")
            wait_for(lambda: mongo_db["inspections"].count_documents({}) >= 60, 60, "production documents")
            wait_for(
                lambda: sum(committed_offsets(kafka_config, production_group, topics.frames).values()) == 60,
                60,
                "production commits",
            )
        finally:
            assert prod_run.stop() == 0
        production_committed = committed_offsets(kafka_config, production_group, topics.frames)
        try:
            # Production is stopped; the shadow keeps inspecting the next frames. It must not move
            # production's offsets (a shared group would, and production would then skip these frames).
            produce_frames(kafka_config, topics.frames, later)
            wait_for(lambda: mongo_db[SHADOW_COLLECTION].count_documents({}) >= 90, 60, "shadow documents")
            wait_for(
                lambda: sum(committed_offsets(kafka_config, shadow.group_id, topics.frames).values()) == 90,
                60,
                "shadow commits",
            )
            metrics = shadow_run.worker.metrics.render().decode()
        finally:
            assert shadow_run.stop() == 0
        shadow_results = read_topic(
            kafka_config, shadow_names.results, decoder(InspectionResult), expected=90
        )
        events = read_topic(
            kafka_config, topics.defect_events, decoder(DefectEvent), expected=0, settle_s=2.0
        )

    assert committed_offsets(kafka_config, production_group, topics.frames) == production_committed
    assert (
        sum(production_committed.values()) == 60
        and sum(end_offsets(kafka_config, topics.frames).values()) == 90
    )
    # Production's outputs hold production's model only, one result per frame it saw.
    assert len(results) == 60 and {r.model.version for r in results} == {"t1"}
    assert {r.identity for r in results} == {f.identity for f in frames}
    assert events and {e.model.version for e in events} == {"t1"}
    assert {d["model"]["version"] for d in mongo_db["inspections"].find({}, {"model": 1})} == {"t1"}
    assert mongo_db["inspections"].count_documents({}) == 60
    # The candidate's outputs are its own.
    assert len(shadow_results) == 90 and {r.model.version for r in shadow_results} == {"t2"}
    assert {d["model"]["version"] for d in mongo_db[SHADOW_COLLECTION].find({}, {"model": 1})} == {"t2"}
    assert 'lineguard_worker_results_out_total{role="shadow"} 90.0' in metrics
    # Same weights: same verdict on every frame production inspected.
    verdicts = {r.identity: r.verdict for r in results}
    assert all(verdicts[r.identity] == r.verdict for r in shadow_results if r.identity in verdicts)


def test_a_shadow_worker_refuses_production_outputs(topics: TopicNames, model_dir: Path) -> None:
    from schemas.errors import ConfigurationError

    production = worker_settings(topics, "prod", model_dir)
    with pytest.raises(
        ConfigurationError, match="MongoDB collection must be a shadow one, not 'inspections'"
    ):
        shadow_settings(production, model_dir, "lineguard-shadow-x", collection="inspections")
    with pytest.raises(ConfigurationError, match="results topic must be a shadow one"):
        shadow_settings(production, model_dir, "lineguard-shadow-x", results_topic=topics.results)
    with pytest.raises(ConfigurationError, match="group must be its own"):
        shadow_settings(production, model_dir, production.group_id)


def test_lineguard_shadow_run_live_until_sigterm(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.integration.shadow_support import env_for
    from tests.integration.test_workers_pipeline import _free_port
    from tests.integration.test_workers_support import REPO_ROOT

    registry = registry_with(model_dir, tmp_path)
    port = _free_port()
    env = {**os.environ, **env_for(endpoints, mongo_db.name, topics)}
    command = [sys.executable, "-m", "lineguard.cli", "shadow", "run", "--model", MODEL, "--version", "t2"]
    command += ["--registry", str(registry.root), "--line", "line-1", "--metrics-port", str(port)]

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            return ""

    with shadow_topics_cleaned(kafka_config, topics):
        process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
        try:
            # Live starts at the end: produce only once the group has given it the partitions.
            wait_for(
                lambda: _assigned(kafka_config, f"lineguard-shadow-{MODEL}-t2", topics.frames),
                120,
                "partitions",
            )
            produce_frames(kafka_config, topics.frames, make_frames(30))
            wait_for(lambda: mongo_db[SHADOW_COLLECTION].count_documents({}) >= 30, 60, "shadow documents")
            scraped = metrics()
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert 'lineguard_worker_results_out_total{role="shadow"} 30.0' in scraped
    assert mongo_db["inspections"].count_documents({}) == 0  # production's collection untouched


def _assigned(kafka_config: dict[str, Any], group: str, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:  # while the group forms, the coordinator may not answer in time: ask again
        admin = _ADMIN.setdefault("admin", AdminClient(kafka_config))
        described = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
    except Exception:
        return False
    owned = {
        tp.partition for m in described.members for tp in m.assignment.topic_partitions if tp.topic == topic
    }
    return len(owned) == 3


_ADMIN: dict[str, Any] = {}
