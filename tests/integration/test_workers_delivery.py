"""Delivery guarantees with real processes: SIGKILL mid-stream, exactly-once, SIGTERM drain.

Workers run as subprocesses (``python -m workers``) so they can be killed like a crashed pod.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from schemas.records import InspectionResult
from schemas.topics import TopicNames
from tests.integration.test_workers_support import (
    committed_offsets,
    decoder,
    make_frames,
    produce_frames,
    read_topic,
    start_worker,
    terminate,
    wait_for,
)

pytestmark = pytest.mark.integration

CAMERAS = tuple(f"cam-{n}" for n in range(9))  # keys that land on all three partitions


def _kill_when(process: subprocess.Popen[bytes], collection: Any, documents: int, log: Path) -> None:
    wait_for(
        lambda: collection.count_documents({}) >= documents or process.poll() is not None,
        90,
        f"{documents} documents before the kill",
        interval_s=0.02,
    )
    assert process.poll() is None, log.read_text()[-3000:]
    process.send_signal(signal.SIGKILL)
    process.wait(30)


def test_sigkill_mid_stream_then_restart_leaves_no_frame_without_result_and_no_duplicate_document(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    worker_subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    frames = make_frames(600, cameras=CAMERAS)
    produce_frames(kafka_config, topics.frames, frames)
    env = worker_subprocess_env
    collection = mongo_db["inspections"]
    log = tmp_path / "worker.log"

    first = start_worker(env, log_path=log)
    _kill_when(first, collection, 60, log)
    killed_at = collection.count_documents({})
    assert killed_at < len(frames), "the worker finished before it could be killed mid-stream"

    second = start_worker(env, log_path=log)
    try:
        wait_for(lambda: collection.count_documents({}) >= len(frames), 120, "all documents after restart")
    finally:
        assert terminate(second) == 0, log.read_text()[-3000:]

    results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(frames))
    assert {r.identity for r in results} == {f.identity for f in frames}  # no frame without a result
    assert collection.count_documents({}) == len(frames)  # one document per frame: the replay upserted
    assert len({d["_id"] for d in collection.find({}, {"_id": 1})}) == len(frames)
    # At least once: frames between the last commit and the kill may have two results, never more batches.
    duplicates = sum(count - 1 for count in Counter(r.identity for r in results).values())
    assert duplicates <= killed_at + 8 * 16


def test_exactly_once_gives_exactly_n_results_under_read_committed_after_sigkill(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    worker_subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    frames = make_frames(400, cameras=CAMERAS)
    produce_frames(kafka_config, topics.frames, frames)
    env = worker_subprocess_env
    env["LINEGUARD_WORKER_EXACTLY_ONCE"] = "true"
    env["LINEGUARD_WORKER_WORKER_ID"] = "eos-worker-1"  # stable: the restart fences and aborts the dead one
    collection = mongo_db["inspections"]
    log = tmp_path / "worker.log"

    first = start_worker(env, log_path=log)
    _kill_when(first, collection, 60, log)

    second = start_worker(env, log_path=log)
    try:
        wait_for(lambda: collection.count_documents({}) >= len(frames), 120, "all documents after restart")
        results = read_topic(
            kafka_config, topics.results, decoder(InspectionResult), expected=len(frames), settle_s=3.0
        )
    finally:
        assert terminate(second) == 0, log.read_text()[-3000:]

    assert len(results) == len(frames)
    assert {r.identity for r in results} == {f.identity for f in frames}
    assert collection.count_documents({}) == len(frames)
    uncommitted = read_topic(
        kafka_config, topics.results, decoder(InspectionResult), expected=len(frames), read_committed=False
    )
    # The killed worker's open transaction really wrote records; read_committed hid them.
    assert len(uncommitted) >= len(frames)


def test_sigterm_drains_commits_and_exits_zero(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    worker_subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    frames = make_frames(600, cameras=CAMERAS)
    produce_frames(kafka_config, topics.frames, frames)
    env = worker_subprocess_env
    collection = mongo_db["inspections"]
    log = tmp_path / "worker.log"

    worker = start_worker(env, log_path=log)
    wait_for(lambda: collection.count_documents({}) >= 60, 90, "the worker to get going", interval_s=0.02)
    assert terminate(worker, signal.SIGTERM, timeout_s=45) == 0, log.read_text()[-3000:]

    committed = committed_offsets(kafka_config, env["LINEGUARD_WORKER_GROUP_ID"], topics.frames)
    results = read_topic(
        kafka_config, topics.results, decoder(InspectionResult), expected=sum(committed.values())
    )
    offsets: dict[int, set[int]] = defaultdict(set)
    for result in results:
        offsets[result.source.partition].add(result.source.offset)
    for partition, position in committed.items():
        # Everything committed has a result, and everything with a result was committed: nothing half-done.
        assert offsets[partition] == set(range(position)), f"partition {partition}"
    assert collection.count_documents({}) == len(results)
