"""Delivery guarantees with real processes: SIGKILL mid-stream, exactly-once, SIGTERM drain.

Workers run as subprocesses (``python -m workers``) so they can be killed like a crashed pod.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
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


def _results_to_end(kafka_config: dict[str, Any], topic: str, read_committed: bool) -> list[InspectionResult]:
    """Every result on ``topic`` up to the end the consumer reports (``PARTITION_EOF``: the high watermark,
    or under read_committed the last stable offset), so a count taken now is exact, not "after a while"."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"end-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    decode = decoder(InspectionResult)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        remaining, results = set(partitions), []
        deadline = time.monotonic() + 60
        while remaining:
            assert time.monotonic() < deadline, f"partitions {remaining} of {topic} never reached their end"
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition())
                elif error is None:
                    results.append(decode(message.value()))
        return results
    finally:
        consumer.close()


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
    assert collection.count_documents({}) < len(frames), "the worker finished before it could be killed"
    # What the restart resumes from, and the results the killed worker wrote past it: exactly those may
    # be written twice (at least once), each of them once more, and nothing else.
    committed_at_kill = committed_offsets(kafka_config, env["LINEGUARD_WORKER_GROUP_ID"], topics.frames)
    written_past_commit = {
        (r.source.partition, r.source.offset)
        for r in _results_to_end(kafka_config, topics.results, read_committed=False)
        if r.source.offset >= committed_at_kill[r.source.partition]
    }

    second = start_worker(env, log_path=log)
    try:
        wait_for(lambda: collection.count_documents({}) >= len(frames), 120, "all documents after restart")
    finally:
        assert terminate(second) == 0, log.read_text()[-3000:]

    results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=len(frames))
    assert {r.identity for r in results} == {f.identity for f in frames}  # no frame without a result
    assert collection.count_documents({}) == len(frames)  # one document per frame: the replay upserted
    assert len({d["_id"] for d in collection.find({}, {"_id": 1})}) == len(frames)
    per_record = Counter((r.source.partition, r.source.offset) for r in results)
    assert max(per_record.values()) <= 2
    assert {record for record, count in per_record.items() if count == 2} == written_past_commit


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

    # Kill until a kill lands inside an open transaction that already wrote results (almost always the
    # first: a transaction is open for most of a batch), so the test proves read_committed hid them.
    aborted = 0
    for _attempt in range(3):
        killed = start_worker(env, log_path=log)
        _kill_when(killed, collection, collection.count_documents({}) + 30, log)
        written = _results_to_end(kafka_config, topics.results, read_committed=False)
        visible = _results_to_end(kafka_config, topics.results, read_committed=True)
        aborted = len(written) - len(visible)
        if aborted > 0:
            break
    assert aborted > 0, "no SIGKILL landed inside a transaction holding results"
    assert collection.count_documents({}) < len(frames), "the worker finished before it could be killed"

    second = start_worker(env, log_path=log)
    try:
        wait_for(lambda: collection.count_documents({}) >= len(frames), 120, "all documents after restart")
        # The last transaction may commit just after its documents are written.
        wait_for(
            lambda: len(_results_to_end(kafka_config, topics.results, read_committed=True)) >= len(frames),
            60,
            "the last transaction's commit",
        )
        results = _results_to_end(kafka_config, topics.results, read_committed=True)
    finally:
        assert terminate(second) == 0, log.read_text()[-3000:]

    assert len(results) == len(frames)
    assert {r.identity for r in results} == {f.identity for f in frames}
    assert collection.count_documents({}) == len(frames)
    uncommitted = _results_to_end(kafka_config, topics.results, read_committed=False)
    # The killed worker's aborted transaction really wrote records; read_committed hid every one of them.
    assert len(uncommitted) >= len(frames) + aborted


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
