"""`lineguard sink postgres` against real Kafka and a real PostgreSQL: every row once, through SIGKILL and an
outage; a refused login is one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import pytest

from mes.samples import produce, sample_results
from schemas.topics import TopicNames

pytestmark = pytest.mark.integration


def _sink(
    kafka_config: dict[str, Any], uri: str, topic: str, group: str, *extra: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_config["bootstrap.servers"]}
    return subprocess.Popen(
        [sys.executable, "-m", "lineguard.cli", "sink", "postgres", "--postgres-uri", uri, "--topic", topic,
         "--group", group, "--batch-size", "500", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _count(uri: str) -> int:
    try:
        with psycopg.connect(uri, connect_timeout=2) as connection:
            row = connection.execute("SELECT count(*) FROM inspections").fetchone()
            return int(row[0]) if row else 0
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return -1


def _wait_for(uri: str, expected: int, process: subprocess.Popen[str], timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _count(uri) < expected:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, f"{_count(uri)} of {expected} rows after {timeout_s} s"
        time.sleep(0.05)


def _stop(process: subprocess.Popen[str]) -> dict[str, int]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _check_exactly(uri: str, expected: int) -> None:
    with psycopg.connect(uri) as connection:
        rows, distinct = connection.execute("SELECT count(*), count(DISTINCT id) FROM inspections").fetchone()
        windows = connection.execute(
            "SELECT sum(inspections), sum(defect) FROM inspection_windows"
        ).fetchone()
        partitions = connection.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'inspections'::regclass"
        ).fetchone()
    assert rows == distinct == expected
    assert windows == (expected, (expected + 9) // 10)  # counts recomputed, never double-counted
    assert partitions == (2,)  # the sample spans January and February


def test_sigkill_mid_stream_and_restart_loses_and_duplicates_nothing(
    kafka_config: dict[str, Any], topics: TopicNames, postgres_uri: str
) -> None:
    total = 12_000  # ~1 s of sink work: the kill lands while batches are being written
    produce(kafka_config, topics.results, sample_results(total))
    group = f"pg-{uuid.uuid4().hex[:8]}"
    first = _sink(kafka_config, postgres_uri, topics.results, group, "--instance-id", "sink-1")
    _wait_for(postgres_uri, 1, first)
    first.send_signal(signal.SIGKILL)  # mid-stream: batches are being written back to back
    first.wait(timeout=10)
    killed_at = _count(postgres_uri)
    assert 0 < killed_at < total
    second = _sink(kafka_config, postgres_uri, topics.results, group, "--instance-id", "sink-1")
    _wait_for(postgres_uri, total, second)
    stats = _stop(second)
    _check_exactly(postgres_uri, total)
    assert stats["rows"] <= total - killed_at + 500  # it resumed from the committed offsets, not from 0


def test_a_postgres_outage_pauses_the_sink_and_it_resumes_without_loss(
    kafka_config: dict[str, Any], topics: TopicNames, own_postgres_uri: str, postgres_server: Any
) -> None:
    from chaos.postgres_outage import postgres_outage

    results = sample_results(3_000)
    produce(kafka_config, topics.results, results[:1_000])
    sink = _sink(kafka_config, own_postgres_uri, topics.results, f"pg-{uuid.uuid4().hex[:8]}")
    _wait_for(own_postgres_uri, 1_000, sink)
    with postgres_outage(postgres_server):
        produce(kafka_config, topics.results, results[1_000:])
        time.sleep(2.0)  # the sink meets the outage mid-batch and pauses
        assert sink.poll() is None
    _wait_for(own_postgres_uri, 3_000, sink)
    stats = _stop(sink)
    assert stats["outages"] >= 1
    _check_exactly(own_postgres_uri, 3_000)


def test_wrong_credentials_are_one_line_and_exit_2(
    kafka_config: dict[str, Any], topics: TopicNames, postgres_uri: str
) -> None:
    wrong = postgres_uri.replace("lineguard:lineguard@", "lineguard:not-the-password@")
    assert wrong != postgres_uri
    process = _sink(kafka_config, wrong, topics.results, "g")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip().count("\n") == 0 and "password authentication failed" in err
    assert "not-the-password" not in err


def test_stack_up_with_postgres_starts_a_server_and_down_purges_it(
    kafka_config: dict[str, Any], tmp_path: Any
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_config["bootstrap.servers"],  # set: the stack starts nothing else
        "MONGODB_URI": os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:1/"),
        "LINEGUARD_STACK_STATE_DIR": str(tmp_path / "stack"),
    }
    env.pop("POSTGRES_URI", None)
    command = [sys.executable, "-m", "lineguard.cli", "stack"]
    up = subprocess.run(
        [*command, "up", "--with", "postgres"], capture_output=True, text=True, env=env, timeout=120
    )
    try:
        assert up.returncode == 0, up.stderr
        uri = up.stdout.strip().removeprefix("export POSTGRES_URI=")
        with psycopg.connect(uri) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        down = subprocess.run(
            [*command, "down", "--with", "postgres", "--purge"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert down.returncode == 0 and "stopped: postgres" in down.stdout
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(uri, connect_timeout=2)
