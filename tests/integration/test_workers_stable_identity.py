"""Exactly-once restart with the *default* worker id (workers.identity): the restarted worker takes its killed
predecessor's slot, so its ``init_transactions`` fences the dead producer and aborts its open transaction, and
``read_committed`` readers resume when the new worker starts, not when ``transaction.timeout.ms`` expires.

No ``LINEGUARD_WORKER_WORKER_ID`` is set. The transaction timeout is raised to 10 minutes so the outcome
cannot be the broker expiring the dead transaction: a stable offset that moves on during the test was moved
by fencing. The figures (stall of read_committed readers, restart time to ``/ready``) are printed (``-s``).
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from pymongo.database import Database

from schemas.topics import TopicNames
from tests.integration.test_workers_delivery import CAMERAS, _kill_inside_a_transaction, _results_to_end
from tests.integration.test_workers_support import (
    make_frames,
    produce_frames,
    start_worker,
    terminate,
    wait_for,
)

pytestmark = pytest.mark.integration

TRANSACTION_TIMEOUT_MS = 600_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _held_partitions(kafka_config: dict[str, Any], topic: str) -> dict[int, int]:
    """Partitions whose last stable offset is behind the high watermark: partition -> high watermark."""
    ends = {
        level: Consumer({**kafka_config, "group.id": f"lso-{uuid.uuid4().hex[:8]}", "isolation.level": level})
        for level in ("read_uncommitted", "read_committed")
    }
    try:
        held = {}
        for partition in ends["read_committed"].list_topics(topic, timeout=10).topics[topic].partitions:
            where = TopicPartition(topic, partition)
            _, stable = ends["read_committed"].get_watermark_offsets(where, timeout=5, cached=False)
            _, high = ends["read_uncommitted"].get_watermark_offsets(where, timeout=5, cached=False)
            if stable < high:
                held[partition] = high
        return held
    finally:
        for consumer in ends.values():
            consumer.close()


def _stable_offsets(kafka_config: dict[str, Any], topic: str, partitions: list[int]) -> dict[int, int]:
    consumer = Consumer({**kafka_config, "group.id": f"lso-{uuid.uuid4().hex[:8]}"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def test_default_worker_id_fences_a_killed_predecessor_without_waiting_for_the_timeout(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    worker_subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    frames = make_frames(400, cameras=CAMERAS)
    produce_frames(kafka_config, topics.frames, frames)
    env = dict(worker_subprocess_env)
    env.pop("LINEGUARD_WORKER_WORKER_ID", None)  # the default id is what is under test
    env["LINEGUARD_WORKER_EXACTLY_ONCE"] = "true"
    env["LINEGUARD_WORKER_TRANSACTION_TIMEOUT_MS"] = str(TRANSACTION_TIMEOUT_MS)
    log = tmp_path / "worker.log"

    killed = start_worker(env, log_path=log)
    _kill_inside_a_transaction(killed, kafka_config, topics.results, log)
    killed_at = time.monotonic()
    held = _held_partitions(kafka_config, topics.results)
    assert held, "the kill landed inside an open transaction, yet no partition is held back"
    dead_ids = {r.worker_id for r in _results_to_end(kafka_config, topics.results, read_committed=False)}

    port = _free_port()
    second = start_worker({**env, "LINEGUARD_WORKER_METRICS_PORT": str(port)}, log_path=log)
    try:
        stall_s = restart_s = None
        deadline = time.monotonic() + 180
        while stall_s is None or restart_s is None:
            assert second.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"held partitions {held} never released; see {log}"
            now = time.monotonic()
            if restart_s is None and _ready(port):
                restart_s = now - killed_at
            if stall_s is None:
                stable = _stable_offsets(kafka_config, topics.results, list(held))
                if all(stable[p] >= high for p, high in held.items()):
                    stall_s = now - killed_at
            time.sleep(0.1)
        wait_for(
            lambda: len(_results_to_end(kafka_config, topics.results, read_committed=True)) >= len(frames),
            120,
            "every frame's committed result",
        )
        results = _results_to_end(kafka_config, topics.results, read_committed=True)
    finally:
        assert terminate(second, signal.SIGTERM) == 0, log.read_text()[-3000:]

    print(
        f"\nstable id {sorted(dead_ids)}: read_committed stall {stall_s:.1f} s after the SIGKILL, restart "
        f"(kill -> /ready) {restart_s:.1f} s, ratio {stall_s / restart_s:.2f}; transaction timeout "
        f"{TRANSACTION_TIMEOUT_MS / 1000:.0f} s"
    )
    # Released long before the broker could have expired the transaction: the restart fenced it.
    assert stall_s < TRANSACTION_TIMEOUT_MS / 1000
    # One id before and after the restart (the killed worker's slot), and exactly once per frame.
    assert len(dead_ids) == 1 and {r.worker_id for r in results} == dead_ids
    assert sorted(r.identity for r in results) == sorted(f.identity for f in frames)
