"""Replaying a recorded time range through a candidate, the report it gives (the same twice), and the
promotion gate on it: a candidate that misses production's defects is refused, one that matches is
promoted, a forced promotion keeps its reason in the alias history, and rollback is one command."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.stack.endpoints import Endpoints
from schemas.errors import ConfigurationError
from schemas.topics import TopicNames
from tests.integration.shadow_support import (
    MODEL,
    env_for,
    mongo,
    registry_with,
    shadow_topics_cleaned,
    worker_settings,
)
from tests.integration.test_workers_pipeline import RunningWorker
from tests.integration.test_workers_support import make_frames, produce_frames, wait_for
from workers.pipeline import Worker
from workers.shadow.config import SHADOW_COLLECTION, resolve_candidate, shadow_group, shadow_settings
from workers.shadow.replay import RangeRequest
from workers.shadow.run import ShadowTarget, run_replay

pytestmark = pytest.mark.integration


def _mark() -> datetime:
    time.sleep(0.05)  # record times are milliseconds: keep the marks apart from the records around them
    moment = datetime.now(UTC)
    time.sleep(0.05)
    return moment


def _invoke(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def test_replay_report_twice_and_the_promotion_gate(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    registry = registry_with(model_dir, tmp_path)
    where = str(registry.root)
    frames = make_frames(120)
    before, inside, after = frames[:40], frames[40:100], frames[100:]
    production = worker_settings(topics, f"prod-{uuid.uuid4().hex[:8]}", model_dir)
    running = RunningWorker(Worker(production, endpoints=endpoints, mongo=mongo(mongo_db.name)))
    try:
        assert running.worker.wait_started(120)
        produce_frames(kafka_config, topics.frames, before)
        since = _mark()
        produce_frames(kafka_config, topics.frames, inside)
        until = _mark()
        produce_frames(kafka_config, topics.frames, after)
        wait_for(lambda: mongo_db["inspections"].count_documents({}) >= 120, 90, "production documents")
    finally:
        assert running.stop() == 0
    # Reviewers labelled 30 frames of the range with the truth.
    mongo_db["labels"].insert_many(
        {
            "camera_id": f.camera_id,
            "frame_number": f.frame_number,
            "label": (f.ground_truth.labels[0] if f.ground_truth and f.ground_truth.labels else "good"),
            "labelled_by": "reviewer",
            "labelled_at": datetime.now(UTC),
        }
        for f in inside[:30]
    )
    env = env_for(endpoints, mongo_db.name, topics, LINEGUARD_GATE_MIN_FRAMES="50")
    replay = [
        *("shadow", "run", "--model", MODEL, "--registry", where, "--line", "line-1"),
        *("--from", since.isoformat(), "--to", until.isoformat()),
    ]

    def report(version: str, out: str) -> dict[str, Any]:
        args = ["shadow", "report", "--model", MODEL, "--version", version, "--line", "line-1"]
        done = _invoke(env, *args, "--out", str(tmp_path / out), "--registry", where, "--json")
        return dict(json.loads(done.stdout))

    with shadow_topics_cleaned(kafka_config, topics):
        first_run = json.loads(_invoke(env, *replay, "--version", "t2").stdout)
        first = report("t2", "report-1")
        second_run = json.loads(_invoke(env, *replay, "--version", "t2").stdout)
        second = report("t2", "report-2")
        # The blind candidate (never DEFECT), through the library call the CLI makes.
        blind = shadow_settings(
            production,
            resolve_candidate(registry, MODEL, "t3", "line-1"),
            shadow_group(MODEL, "t3", replay=True),
            line="line-1",
        )
        outcome = run_replay(
            blind,
            ShadowTarget(line="line-1", replay=RangeRequest(since=since, until=until)),
            endpoints=endpoints,
            mongo=mongo(mongo_db.name),
            timeout_s=300,
        )
        blind_report = report("t3", "report-3")

    for run in (first_run, second_run):
        assert run["complete"] and run["records_in_range"] == 60 and run["results_written"] == 60
    assert first_run["group"] != second_run["group"]
    # Only the range was inspected: 60 candidate documents, none of the frames before or after it.
    inside_ids = {(f.camera_id, f.frame_number) for f in inside}
    shadow_ids = {
        (d["camera_id"], d["frame_number"])
        for d in mongo_db[SHADOW_COLLECTION].find(
            {"model.version": "t2"}, {"camera_id": 1, "frame_number": 1}
        )
    }
    assert shadow_ids == inside_ids
    assert outcome.complete and outcome.results == 60
    # The same range gives the same report.
    assert first["content_sha256"] == second["content_sha256"]
    assert first["comparison"] == second["comparison"] and first["disagreements"] == second["disagreements"]
    assert first["frames"] == {
        "shadow": 60,
        "compared": 60,
        "without_production_verdict": 0,
        "labelled": 30,
        "disagreeing": first["frames"]["disagreeing"],
    }
    same = first["comparison"]["lines"]["line-1"]["all"]
    assert same["agreement"]["rate"] == 1.0 and same["escape_vs_production"]["k"] == 0
    assert first["production"]["versions"] == {f"{MODEL}:t1": 60}
    assert (tmp_path / "report-1" / "report.md").read_text().startswith(f"# Shadow report: {MODEL} t2")
    assert (tmp_path / "report-1" / "scores.png").read_bytes()[:4] == b"\x89PNG"
    # The blind candidate escapes every frame production called a defect.
    blind_line = blind_report["comparison"]["lines"]["line-1"]["all"]
    defects = blind_line["escape_vs_production"]["n"]
    assert defects > 0 and blind_line["escape_vs_production"]["k"] == defects
    assert blind_report["gate"]["line-1"].startswith("would refuse: escape rate 100.00%")

    promote = ["models", "promote", "--model", MODEL, "--line", "line-1", "--registry", where]
    refused = CliRunner().invoke(app, [*promote, "--version", "t3"], env=env)
    assert isinstance(refused.exception, ConfigurationError)
    assert str(refused.exception).startswith("promotion refused: escape rate 100.00%")
    _invoke(env, *promote, "--version", "t2")
    _invoke(env, *promote, "--version", "t3", "--force", "--reason", "night shift trial, ticket 7")
    history = registry.history("line-1")
    assert [c.version for c in history] == ["t1", "t2", "t3"]
    assert history[1].reason is not None and history[1].reason.startswith("shadow gate passed: report ")
    assert history[2].reason == "forced: night shift trial, ticket 7"
    _invoke(env, "models", "rollback", "--line", "line-1", "--registry", where)
    alias = registry.alias("line-1")
    assert alias is not None and alias.version == "t2"
