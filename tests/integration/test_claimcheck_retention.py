"""Issue 18, item 1: claim-check objects expire with the frames that reference them, against the real Kafka
and MongoDB. Ages are set on the stored files documents (an hour old, two hours old) instead of waited
for, and the topic's short ``retention.ms`` is read from the broker; Kafka never deletes its active
segment, so a record older than the retention stays readable, which is exactly the lagging-deletion case
the pruner must respect."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Producer
from pymongo.database import Database
from typer.testing import CliRunner

from infra.claimcheck import ClaimCheckStoreFullError, GridFSClaimCheckStore
from infra.claimcheck_retention import prune_bucket, prune_cutoff, read_topic_retention
from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.cli import app
from schemas.errors import ServiceUnavailableError
from schemas.records import Frame, ImageEncoding
from schemas.serde import AvroRecordSerializer
from streams.frame_encoding import FrameEncoder
from streams.publisher_contract import PublisherOptions, PublisherStats

pytestmark = pytest.mark.integration

RETENTION_MS = 5_000


def _blob(seed: int, size: int = 40_000) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.fixture
def frames_topic(kafka_config: dict[str, Any]) -> Iterator[str]:
    name = f"test.claimcheck-retention.{uuid.uuid4().hex[:8]}.frames"
    ensure_topics(kafka_config, [name], partitions=2, extra_topic_config={"retention.ms": str(RETENTION_MS)})
    try:
        yield name
    finally:
        delete_topics(kafka_config, [name])


def _age(db: Database[dict[str, Any]], data: bytes, age: timedelta) -> str:
    digest = hashlib.sha256(data).hexdigest()
    moment = datetime.now(UTC) - age
    db["frames.files"].update_one(
        {"_id": digest}, {"$set": {"uploadDate": moment, "metadata.referenced_at": moment}}
    )
    return digest


def _frame_referencing(store: GridFSClaimCheckStore, data: bytes) -> bytes:
    frame = Frame(
        camera_id="cam",
        line_id="l",
        station_id="s",
        frame_number=1,
        captured_at=datetime.now(UTC),
        width=1,
        height=1,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=b"",
        image_ref=store.put(data),
    )
    return AvroRecordSerializer(Frame)(frame)


def test_expired_objects_go_and_objects_retained_records_reference_stay(
    kafka_config: dict[str, Any],
    mongo_db: Database[dict[str, Any]],
    frames_topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
    expired, referenced, fresh, reuploaded = (_blob(seed) for seed in range(4))
    expired_id = (store.put(expired), _age(mongo_db, expired, timedelta(hours=2)))[1]
    value = _frame_referencing(store, referenced)
    referenced_id = _age(mongo_db, referenced, timedelta(hours=1))
    store.put(fresh)
    store.put(reuploaded)
    reuploaded_id = _age(mongo_db, reuploaded, timedelta(hours=2))
    store.put(reuploaded)  # a producer sends the same bytes again: the object is referenced anew

    # A retained record (timestamped an hour ago, far beyond retention.ms) still points at `referenced`.
    producer = Producer(kafka_config)
    record_ms = int((datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=1)).timestamp() * 1000)
    producer.produce(frames_topic, value, key=b"cam", partition=1, timestamp=record_ms)
    assert producer.flush(30) == 0

    retention = read_topic_retention(kafka_config, [frames_topic])
    assert [(topic.retention_ms, topic.oldest_ms) for topic in retention] == [
        (RETENTION_MS, {0: None, 1: record_ms})
    ]

    monkeypatch.setenv("LINEGUARD_MONGODB_DATABASE", mongo_db.name)
    args = ["claimcheck", "prune", "--topic", frames_topic, "--margin-s", "60"]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 1 of 4 objects" in dry.output
    assert mongo_db["frames.files"].count_documents({}) == 4

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "deleted 1 of 4 objects" in result.output
    assert sorted(doc["_id"] for doc in mongo_db["frames.files"].find({}, {"_id": 1})) == sorted(
        {referenced_id, reuploaded_id, hashlib.sha256(fresh).hexdigest()}
    )
    assert mongo_db["frames.chunks"].count_documents({"files_id": expired_id}) == 0
    assert store.get(store.put(referenced)) == referenced


def test_the_retention_read_from_the_broker_decides_and_for_ever_keeps_everything(
    kafka_config: dict[str, Any], mongo_db: Database[dict[str, Any]], frames_topic: str
) -> None:
    store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
    older, younger = _blob(10), _blob(11)
    store.put(older)
    store.put(younger)
    _age(mongo_db, older, timedelta(milliseconds=RETENTION_MS * 3))
    _age(mongo_db, younger, timedelta(milliseconds=RETENTION_MS // 5))

    endless = f"{frames_topic}.endless"
    ensure_topics(kafka_config, [endless], partitions=1, extra_topic_config={"retention.ms": "-1"})
    try:
        cutoff = prune_cutoff(datetime.now(UTC), read_topic_retention(kafka_config, [endless]), 0)
        assert cutoff is None
        assert prune_bucket(mongo_db, "frames", cutoff).deleted == 0
    finally:
        delete_topics(kafka_config, [endless])

    cutoff = prune_cutoff(datetime.now(UTC), read_topic_retention(kafka_config, [frames_topic]), 0)
    report = prune_bucket(mongo_db, "frames", cutoff)
    assert (report.scanned, report.deleted, report.kept) == (2, 1, 1)
    assert mongo_db["frames.files"].find_one({"_id": hashlib.sha256(younger).hexdigest()}) is not None


def test_a_full_store_refuses_new_images_at_once_and_counts_them(mongo_db: Database[dict[str, Any]]) -> None:
    now = [0.0]
    store = GridFSClaimCheckStore(
        mongo_db.client, mongo_db.name, max_store_bytes=60_000, clock=lambda: now[0]
    )
    first, second = _blob(20), _blob(21)
    store.put(first)
    store.put(first)  # already stored: needs no room
    with pytest.raises(ClaimCheckStoreFullError, match="is full"):
        store.put(second)
    assert store.full_refusals == 1

    # The camera's encoder loses (and counts) that one frame, and goes on.
    stats = PublisherStats()
    encoder = FrameEncoder(
        PublisherOptions(topic="t", inline_limit_bytes=1_000), lambda *_: b"x", store, stats
    )
    frame = Frame(
        camera_id="cam",
        line_id="l",
        station_id="s",
        frame_number=2,
        captured_at=datetime.now(UTC),
        width=1,
        height=1,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=second,
    )
    with pytest.raises(ServiceUnavailableError):
        encoder.encode(frame)
    assert (stats.claim_check_failed, stats.claim_check_full, store.full_refusals) == (1, 1, 2)

    # Pruning frees the room; the next size check (a few seconds later) lets new images in again.
    _age(mongo_db, first, timedelta(hours=2))
    assert prune_bucket(mongo_db, "frames", datetime.now(UTC) - timedelta(hours=1)).deleted == 1
    now[0] += 10.0
    assert store.get(store.put(second)) == second
