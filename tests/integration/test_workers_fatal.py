"""A worker that hits a fatal error exits, non-zero, instead of hanging with threads blocked on full queues.

The fault is deterministic: the results topic accepts no record as large as an inspection result
(``max.message.bytes``), so the first result's delivery fails, the sink thread stops on it and every queue
in front of it fills up behind a backlog of good frames and poison records.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import TopicNames
from tests.integration.test_workers_support import (
    make_frames,
    produce,
    produce_frames,
    start_worker,
    terminate,
)

pytestmark = pytest.mark.integration

EXIT_BOUND_S = 120  # a generous bound: what fails here is a process that never exits


def _tiny_results_topic(kafka_config: dict[str, Any], name: str) -> None:
    admin = AdminClient(kafka_config)
    topic = NewTopic(name, num_partitions=1, replication_factor=1, config={"max.message.bytes": "64"})
    admin.create_topics([topic])[name].result(timeout=30)


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_a_fatal_output_error_ends_the_process_with_a_backlog_behind_it(
    exactly_once: bool,
    kafka_config: dict[str, Any],
    topics: TopicNames,
    worker_subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    results_topic = f"{topics.results}.tiny-{uuid.uuid4().hex[:6]}"
    _tiny_results_topic(kafka_config, results_topic)
    produce_frames(kafka_config, topics.frames, make_frames(200))
    produce(kafka_config, topics.frames, ((b"poison", b"\x00not avro") for _ in range(100)))
    env = worker_subprocess_env
    env["LINEGUARD_WORKER_RESULTS_TOPIC"] = results_topic
    env["LINEGUARD_WORKER_CREATE_TOPICS"] = "false"
    log = tmp_path / "worker.log"
    process = start_worker(env, *(["--exactly-once"] if exactly_once else []), log_path=log)
    try:
        exit_code = process.wait(timeout=EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        terminate(process, timeout_s=30)
        pytest.fail(f"the worker did not exit after its fatal error:\n{log.read_text()[-3000:]}")
    text = log.read_text()
    assert exit_code == 1, text[-3000:]
    assert "worker stopped by an error" in text, text[-3000:]
