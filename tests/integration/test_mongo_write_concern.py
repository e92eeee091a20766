"""Issue 19, item 4: the sink's write concern comes from the URI (default majority + journal), explicit
settings override it, FerretDB (which accepts but does not enforce write concerns) is detected, and write
concern errors fail a write even when the rest of the bulk write is only duplicates (a replay)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from infra.sinks import SinkBackpressure
from lineguard.stack.endpoints import Endpoints
from schemas.records import InspectionResult, KafkaCoordinates, ModelInfo, Task, Verdict
from workers.sinks.mongo import MongoInspectionSink, only_duplicates, write_concern_failures

pytestmark = pytest.mark.integration


def _uri(endpoints: Endpoints, options: str) -> str:
    base = endpoints.mongodb_uri
    return base + ("&" if "?" in base else ("?" if base.endswith("/") else "/?")) + options


def _sink(endpoints: Endpoints, database: str, options: str = "", **kwargs: Any) -> MongoInspectionSink:
    uri = _uri(endpoints, options) if options else endpoints.mongodb_uri
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    return MongoInspectionSink(client[database], "inspections", **kwargs)


def _result(frame: int) -> InspectionResult:
    now = datetime.now(UTC)
    return InspectionResult(
        camera_id="cam",
        line_id="line",
        station_id="st",
        frame_number=frame,
        source=KafkaCoordinates(topic="t", partition=0, offset=frame),
        model=ModelInfo(name="m", version="v1", task=Task.CLASSIFICATION),
        verdict=Verdict.OK,
        captured_at=now,
        received_at=now,
        inferred_at=now,
        batch_size=1,
        worker_id="w",
    )


def test_the_uri_write_concern_is_kept_and_the_default_is_majority_with_journal(
    endpoints: Endpoints, mongo_db: Database[dict[str, Any]]
) -> None:
    name = mongo_db.name
    # The old sink turned ?w=majority&journal=true into {w: 1}.
    uri_concern = _sink(endpoints, name, "w=majority&journal=true")
    assert uri_concern.collection.write_concern.document == {"w": "majority", "j": True}
    assert _sink(endpoints, name, "w=1").collection.write_concern.document == {"w": 1}
    assert _sink(endpoints, name).collection.write_concern.document == {"w": "majority", "j": True}
    explicit = _sink(endpoints, name, "w=majority&journal=true", write_concern_w=1, journal=False)
    assert explicit.collection.write_concern.document == {"w": 1, "j": False}
    # And writes are acknowledged under the default, including a replay of the same documents.
    sink = _sink(endpoints, name)
    sink.ensure_indexes()
    sink.upsert([_result(n) for n in range(5)])
    sink.upsert([_result(n) for n in range(3, 8)])  # 3, 4 are duplicates: replaced
    assert mongo_db["inspections"].count_documents({}) == 8


def test_a_server_that_ignores_write_concerns_is_detected(
    endpoints: Endpoints, mongo_db: Database[dict[str, Any]]
) -> None:
    sink = _sink(endpoints, mongo_db.name)
    ferretdb = "ferretdbVersion" in mongo_db.client.admin.command("buildInfo")
    assert sink.check_server() is (not ferretdb)


def test_write_concern_errors_count_even_when_the_write_errors_are_only_duplicates() -> None:
    # The shapes pymongo gives in BulkWriteError.details (pure classification, no server can be made to
    # fail a write concern on demand here).
    replay = {"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}]}
    assert only_duplicates(replay)
    with_concern_error = {
        **replay,
        "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
    }
    assert not only_duplicates(with_concern_error)
    assert write_concern_failures(with_concern_error)[0]["code"] == 64
    assert not only_duplicates({"writeErrors": [{"index": 0, "code": 121, "errmsg": "validation"}]})


def test_a_write_concern_error_is_retried_then_fails_the_write(
    endpoints: Endpoints, mongo_db: Database[dict[str, Any]]
) -> None:
    from schemas.errors import ServiceUnavailableError
    from workers.sinks.mongo import _raise_write_concern

    sink = MongoInspectionSink(mongo_db, "inspections", retries=2)
    calls = []

    def write(documents: list[dict[str, Any]]) -> None:
        calls.append(1)
        _raise_write_concern({"writeConcernErrors": [{"code": 64, "errmsg": "timed out"}]})

    sink._insert_or_replace = write  # type: ignore[method-assign]
    with pytest.raises(SinkBackpressure) as pressed:  # one attempt: the caller is told how long to wait
        sink.write_batch([_result(1)])
    assert pressed.value.retry_after_s == pytest.approx(0.2)
    with pytest.raises(ServiceUnavailableError, match="write concern"):
        sink.upsert([_result(1)])  # waits through the backpressure until the sink gives up
    # failures in a row count across offers: the refused one, then one more reaches the bound of 2
    assert len(calls) == 2
    assert mongo_db["inspections"].count_documents({}) == 0


def _replayed(frame: int) -> InspectionResult:
    return dataclasses.replace(_result(frame), worker_id="replay")


def test_a_replay_slower_than_the_socket_timeout_is_written_in_smaller_requests(
    endpoints: Endpoints, mongo_db: Database[dict[str, Any]]
) -> None:
    """The soak's restart loop: a restarted worker rewrites documents that exist, which FerretDB/SQLite does
    with a table scan each, so a whole batch outlasted the socket timeout on every attempt and the sink gave
    up. Now a timeout on a server that answers a ping shrinks the request until it fits."""
    from bson import ObjectId

    filler = [{"_id": str(ObjectId()), "pad": "x" * 600} for _ in range(30_000)]  # a table worth scanning
    mongo_db["inspections"].insert_many(filler, ordered=False)
    batch = [_result(frame) for frame in range(48)]
    MongoInspectionSink(mongo_db, "inspections").upsert(batch)  # the first write: plain inserts

    sink = _sink(endpoints, mongo_db.name, "socketTimeoutMS=400", retries=2)
    sink.upsert([_replayed(frame) for frame in range(48)])  # every document exists: all replaced

    rewritten = mongo_db["inspections"].count_documents({"worker_id": "replay"})
    assert rewritten == 48
    assert mongo_db["inspections"].estimated_document_count() == 30_000 + 48
    if not sink.check_server():  # FerretDB: the replay did not fit one request and was split
        assert sink.pace.size < 48
