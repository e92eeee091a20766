"""The stack's MongoDB-protocol server does what the sinks rely on: insert, upsert, find, unique indexes."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

pytestmark = pytest.mark.integration


def test_insert_and_find_round_trip(mongo_db: Database[dict[str, Any]]) -> None:
    results = mongo_db["results"]
    results.insert_many([{"_id": f"cam-1:{n}", "camera": "cam-1", "frame": n} for n in range(5)])

    found = list(results.find({"frame": {"$gte": 3}}).sort("frame", ASCENDING))

    assert [doc["_id"] for doc in found] == ["cam-1:3", "cam-1:4"]
    assert results.count_documents({}) == 5


def test_upsert_writes_one_document_per_id(mongo_db: Database[dict[str, Any]]) -> None:
    results = mongo_db["results"]
    first = results.replace_one({"_id": "cam-1:7:v1"}, {"verdict": "ok", "score": 0.1}, upsert=True)
    second = results.replace_one({"_id": "cam-1:7:v1"}, {"verdict": "defect", "score": 0.9}, upsert=True)

    assert first.upserted_id == "cam-1:7:v1"
    assert second.upserted_id is None and second.matched_count == 1
    assert results.count_documents({}) == 1
    assert results.find_one({"_id": "cam-1:7:v1"}) == {"_id": "cam-1:7:v1", "verdict": "defect", "score": 0.9}


def test_unique_index_rejects_duplicates(mongo_db: Database[dict[str, Any]]) -> None:
    events = mongo_db["defect_events"]
    index_name = events.create_index([("camera", ASCENDING), ("frame", ASCENDING)], unique=True)
    events.insert_one({"camera": "cam-2", "frame": 1})

    with pytest.raises(DuplicateKeyError):
        events.insert_one({"camera": "cam-2", "frame": 1})

    assert index_name in events.index_information()
    assert events.count_documents({}) == 1
