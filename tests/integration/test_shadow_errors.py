"""Bad input to `lineguard shadow`: one clear line on stderr and exit code 2, never a traceback - an unknown
candidate, a candidate of another task, an empty range, a range with no records, one past retention, and a
report with nothing to compare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from schemas.vocabulary import Task
from tests.integration.shadow_support import MODEL, env_for, registry_with, variant
from tests.integration.test_workers_support import REPO_ROOT, end_offsets, make_frames, produce_frames

pytestmark = pytest.mark.integration


def _lineguard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _refused(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return errors[0]


def test_bad_input_is_one_line_and_exit_2(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    registry = registry_with(model_dir, tmp_path)
    registry.publish(variant(model_dir, tmp_path, "d1", task=Task.DETECTION))
    produce_frames(kafka_config, topics.frames, make_frames(30))
    # Retention took the first 3 records of each partition holding more (keys are cameras: some may be empty).
    trimmed = [p for p, high in end_offsets(kafka_config, topics.frames).items() if high > 3]
    assert trimmed
    admin = AdminClient(kafka_config)
    for future in admin.delete_records([TopicPartition(topics.frames, p, 3) for p in trimmed]).values():
        future.result(timeout=30)
    env = env_for(endpoints, mongo_db.name, topics)
    run = ["shadow", "run", "--registry", str(registry.root), "--model", MODEL]

    assert "unknown candidate nope 1" in _refused(_lineguard(env, *run[:-1], "nope", "--version", "1"))
    another_task = _refused(
        _lineguard(env, *run, "--version", "d1", "--line", "line-1", "--from-offset", "3")
    )
    assert "is a detect model but line line-1 runs test-classifier t1, a classify model" in another_task
    empty = _refused(_lineguard(env, *run, "--version", "t2", "--from-offset", "5", "--to-offset", "5"))
    assert "empty range" in empty
    future = _refused(_lineguard(env, *run, "--version", "t2", "--from", "2099-01-01T00:00:00Z"))
    assert "holds no records" in future
    past = _refused(_lineguard(env, *run, "--version", "t2", "--from-offset", "0"))
    assert "is past retention (the oldest kept is 3)" in past
    since = _refused(_lineguard(env, *run, "--version", "t2", "--from", "2020-01-01T00:00:00Z"))
    assert "--from 2020-01-01T00:00:00+00:00 is past retention" in since
    bad_time = _refused(_lineguard(env, *run, "--version", "t2", "--from", "yesterday"))
    assert "is not an ISO time" in bad_time
    nothing = _refused(
        _lineguard(env, "shadow", "report", "--model", MODEL, "--version", "t2", "--out", str(tmp_path / "r"))
    )
    assert "no shadow results of test-classifier t2" in nothing
