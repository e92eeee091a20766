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


def _kill_inside_a_transaction(
    process: subprocess.Popen[bytes], kafka_config: dict[str, Any], topic: str, log: Path
) -> None:
    """SIGKILL ``process`` while one of its transactions holds results on ``topic``: some partition's high
    watermark (read_uncommitted) is past its last stable offset (what read_committed watermarks return)."""
    ends = {
        level: Consumer({**kafka_config, "group.id": f"lso-{uuid.uuid4().hex[:8]}", "isolation.level": level})
        for level in ("read_uncommitted", "read_committed")
    }
    try:
        partitions = [
            TopicPartition(topic, p)
            for p in ends["read_uncommitted"].list_topics(topic, timeout=10).topics[topic].partitions
        ]
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no transaction holding results within 90 s"
            for where in partitions:
                _, stable = ends["read_committed"].get_watermark_offsets(where, timeout=5, cached=False)
                _, high = ends["read_uncommitted"].get_watermark_offsets(where, timeout=5, cached=False)
                if high <= stable:
                    continue
                # Freeze the worker, then look again: a commit already sent completes without it (the
                # stable offset catches up: let it go on and wait for the next one); a transaction still
                # open after that is one the worker never committed, so the kill lands inside it.
                process.send_signal(signal.SIGSTOP)
                time.sleep(0.5)
                _, stable = ends["read_committed"].get_watermark_offsets(where, timeout=5, cached=False)
                if stable < high:
                    process.send_signal(signal.SIGKILL)
                    process.wait(30)
                    return
                process.send_signal(signal.SIGCONT)
    finally:
        for consumer in ends.values():
            consumer.close()


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

    # Killed while a transaction holds results (seen on the broker: high watermark past the last stable
    # offset, and still so with the worker frozen), so the test proves read_committed hides what the dead
    # worker wrote. Killing at a document count was a guess that mostly missed: in exactly-once the
    # documents are written before their transaction's results, which are on the broker only briefly
    # before the commit.
    killed = start_worker(env, log_path=log)
    _kill_inside_a_transaction(killed, kafka_config, topics.results, log)
    written = _results_to_end(kafka_config, topics.results, read_committed=False)
    visible = _results_to_end(kafka_config, topics.results, read_committed=True)
    aborted = len(written) - len(visible)
    assert aborted > 0, "the SIGKILL landed inside an open transaction, yet read_committed hid nothing"
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
