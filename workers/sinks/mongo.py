"""The inspection record in MongoDB: one document per (frame, model version), written in bulk per batch.

``_id`` is derived from the frame's identity and the model version, and every write is a replace-with-upsert,
so a replay (after a crash, a rebalance or ``lineguard dlq replay``) rewrites the same document: never a
second one. Indexes serve the questions people ask: a line over time, defects over time, one camera's frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne, WriteConcern
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError

from schemas.errors import ServiceUnavailableError
from schemas.records import InspectionResult

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000

INDEXES: tuple[tuple[str, list[tuple[str, int]]], ...] = (
    ("line_captured", [("line_id", ASCENDING), ("captured_at", DESCENDING)]),
    ("verdict_captured", [("verdict", ASCENDING), ("captured_at", DESCENDING)]),
    ("camera_frame", [("camera_id", ASCENDING), ("frame_number", ASCENDING)]),
)


def result_id(camera_id: str, frame_number: int, model_version: str) -> str:
    """The stable id of a frame's inspection by one model version: MongoDB ``_id`` and defect ``event_id``."""
    return f"{camera_id}:{frame_number}:{model_version}"


def inspection_document(result: InspectionResult) -> dict[str, Any]:
    """The MongoDB document of one result (BSON dates for the timestamps, no image bytes but the mask)."""
    document = result.to_dict()
    document["_id"] = result_id(result.camera_id, result.frame_number, result.model.version)
    return document


class MongoInspectionSink:
    """Bulk, idempotent writes of inspection documents, with bounded retries on transient failures."""

    def __init__(
        self,
        database: Database[dict[str, Any]],
        collection: str,
        write_concern_w: int | str = 1,
        journal: bool = False,
        retries: int = 5,
    ) -> None:
        concern = WriteConcern(w=write_concern_w, j=journal or None)
        self.collection: Collection[dict[str, Any]] = database.get_collection(
            collection, write_concern=concern
        )
        self._retries = retries

    def ensure_indexes(self) -> None:
        existing = set(self.collection.index_information())
        for name, keys in INDEXES:
            if name not in existing:
                self.collection.create_index(keys, name=name)

    def upsert(self, results: Sequence[InspectionResult]) -> None:
        """Write one document per result; returns once MongoDB acknowledged (per the write concern).

        Inserts first and replaces only the documents that already exist (a replay): an upsert has to look
        the ``_id`` up before writing, which FerretDB's SQLite backend does by scanning the collection, so
        upserting every document made each batch cost O(collection size). Real MongoDB is fast either way.
        """
        if not results:
            return
        documents = [inspection_document(result) for result in results]
        self._with_retries(lambda: self._insert_or_replace(documents))

    def _insert_or_replace(self, documents: list[dict[str, Any]]) -> None:
        try:
            self.collection.insert_many(documents, ordered=False)
            return
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise
            existing = [documents[error["index"]] for error in errors]
        self.collection.bulk_write(
            [ReplaceOne({"_id": document["_id"]}, document, upsert=True) for document in existing],
            ordered=False,
        )

    def _with_retries(self, write: Callable[[], None]) -> None:
        delay = 0.2
        for attempt in range(1, self._retries + 1):
            try:
                write()
                return
            except ConnectionFailure as exc:  # transient: retry with backoff, then give up loudly
                if attempt == self._retries:
                    raise ServiceUnavailableError(
                        f"MongoDB write failed after {attempt} attempts: {exc}"
                    ) from exc
                log.warning("MongoDB write failed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except PyMongoError as exc:
                raise ServiceUnavailableError(f"MongoDB write failed: {exc}") from exc
