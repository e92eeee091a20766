"""The inspection record in MongoDB: one document per (frame, model version), written in bulk per batch.

``_id`` is derived from the frame's identity and the model version, and every write is a replace-with-upsert,
so a replay (after a crash, a rebalance or ``lineguard dlq replay``) rewrites the same document: never a
second one. Indexes serve the questions people ask: a line over time, defects over time, one camera's frames.

Write concern: offsets are committed once MongoDB acknowledged the documents, so the acknowledgement must mean
what the operator asked for. It is the one given explicitly (``LINEGUARD_MONGODB_WRITE_CONCERN_*``), else
the URI's (``?w=majority&journal=true``), else ``{w: "majority", j: true}``: after a failover a w:1
acknowledgement can be rolled back while its offsets stay committed. FerretDB accepts any write concern and
enforces none (durability is its backend's commit); the sink detects it and says so once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pymongo
from pymongo import ASCENDING, DESCENDING, ReplaceOne, WriteConcern
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    NetworkTimeout,
    PyMongoError,
    WriteConcernError,
)

from infra.sinks import SinkBackpressure, write_through_backpressure
from schemas.errors import ServiceUnavailableError
from schemas.inspections import result_id
from schemas.records import InspectionResult
from workers.sinks.write_pace import ChunkPace, FailureRun

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000
_PROBE_TIMEOUT_S = 2.0  # a ping on a live server answers in milliseconds, even on a busy FerretDB
DEFAULT_WRITE_CONCERN = WriteConcern(w="majority", j=True)


def resolve_write_concern(
    database: Database[dict[str, Any]], w: int | str | None = None, journal: bool | None = None
) -> WriteConcern:
    """Explicit settings, else the URI's write concern (the database inherits it), else majority + journal."""
    inherited = database.write_concern
    base = DEFAULT_WRITE_CONCERN if inherited.is_server_default else inherited
    if w is None and journal is None:
        return base
    document = base.document
    return WriteConcern(
        w=w if w is not None else document.get("w"),
        j=journal if journal is not None else document.get("j"),
        wtimeout=document.get("wtimeout"),
    )


def write_concern_failures(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``writeConcernErrors`` of a bulk write's result or error details (pure)."""
    return list(details.get("writeConcernErrors") or [])


def only_duplicates(details: Mapping[str, Any]) -> bool:
    """Whether every write error of a bulk insert is a duplicate ``_id`` (a replay), and nothing else failed
    (no write error of another kind, no write concern error)."""
    errors = details.get("writeErrors") or []
    return all(error.get("code") == _DUPLICATE_KEY for error in errors) and not write_concern_failures(
        details
    )


class WriteConcernFailed(WriteConcernError):
    """MongoDB applied the writes but could not satisfy the write concern (e.g. no majority in time): the
    documents may be rolled back, so nothing may be acknowledged; rewriting them is idempotent."""


INDEXES: tuple[tuple[str, list[tuple[str, int]]], ...] = (
    ("line_captured", [("line_id", ASCENDING), ("captured_at", DESCENDING)]),
    ("verdict_captured", [("verdict", ASCENDING), ("captured_at", DESCENDING)]),
    ("camera_frame", [("camera_id", ASCENDING), ("frame_number", ASCENDING)]),
)


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
        write_concern_w: int | str | None = None,
        journal: bool | None = None,
        retries: int = 5,
        slow_patience_s: float = 600.0,
    ) -> None:
        self.write_concern = resolve_write_concern(database, write_concern_w, journal)
        self.collection: Collection[dict[str, Any]] = database.get_collection(
            collection, write_concern=self.write_concern
        )
        socket_timeout_s = database.client.options.pool_options.socket_timeout
        self.pace = ChunkPace(socket_timeout_s=socket_timeout_s or 20.0)
        self._run = FailureRun(attempts=retries, slow_patience_s=slow_patience_s)
        # _ids acknowledged during an offer that then failed: the same batch offered again skips them
        self._acknowledged: set[str] = set()
        self._offer: tuple[str, str, int] | None = None
        self.server_enforces_write_concern: bool | None = None  # known after ensure_indexes

    def check_server(self) -> bool:
        """Whether the server enforces write concerns (FerretDB accepts them and ignores them); logs once."""
        if self.server_enforces_write_concern is None:
            info = self.collection.database.client.admin.command("buildInfo")
            self.server_enforces_write_concern = "ferretdbVersion" not in info
            if not self.server_enforces_write_concern:
                log.warning(
                    "MongoDB server is FerretDB %s: write concern %s is accepted but not enforced; documents "
                    "are as durable as its backend's commit",
                    info.get("ferretdbVersion"),
                    self.write_concern.document,
                )
        return self.server_enforces_write_concern

    def ensure_indexes(self) -> None:
        self.check_server()
        existing = set(self.collection.index_information())
        for name, keys in INDEXES:
            if name not in existing:
                self.collection.create_index(keys, name=name)

    def upsert(self, results: Sequence[InspectionResult]) -> None:
        """Write one document per result, waiting through transient failures; returns once MongoDB
        acknowledged (per the write concern), or raises ServiceUnavailableError after ``retries`` attempts."""
        write_through_backpressure(self, results)

    # -- the Sink interface (infra.sinks) --------------------------------------------------------------
    def write_batch(self, items: Sequence[InspectionResult]) -> None:
        """One attempt at one document per result, in requests of ``pace.size`` documents.

        A transient failure is :class:`SinkBackpressure` with a doubling hint (0.2 s .. 5 s), and the
        requests already acknowledged are not sent again when the same batch is offered again. A write that
        timed out while the server answers a ping is a slow store: the request size is halved and the sink
        waits as long as requests make progress (``slow_patience_s`` without any). An unreachable server
        ends in ServiceUnavailableError after ``retries`` attempts in a row (see :mod:`write_pace`).

        Inserts first and replaces only the documents that already exist (a replay): an upsert has to look
        the ``_id`` up before writing, which FerretDB's SQLite backend does by scanning the collection
        (~160 ms per document at 60 k documents, measured), so upserting every document made each batch
        cost O(collection size). Real MongoDB is fast either way.
        """
        if not items:
            return
        documents = [inspection_document(result) for result in items]
        offer = (documents[0]["_id"], documents[-1]["_id"], len(documents))
        if offer != self._offer:  # another batch: what an earlier failed offer wrote is not skipped
            self._offer, self._acknowledged = offer, set()
        pending = [document for document in documents if document["_id"] not in self._acknowledged]
        sent = 0
        try:
            while pending:
                chunk = pending[: self.pace.size]
                sent = len(chunk)
                started = time.monotonic()
                self._insert_or_replace(chunk)
                self.pace.took(time.monotonic() - started)
                self._acknowledged.update(document["_id"] for document in chunk)
                self._run.progressed()
                pending = pending[len(chunk) :]
        # transient: the caller waits the hint and offers the batch again (rewrites are idempotent by _id)
        except NetworkTimeout as exc:
            self.pace.timed_out(sent)
            self._wait_or_give_up(exc, store_answers=self._store_answers())
        except (ConnectionFailure, WriteConcernFailed) as exc:
            self._wait_or_give_up(exc, store_answers=False)
        except PyMongoError as exc:
            self._run.succeeded()
            raise ServiceUnavailableError(f"MongoDB write failed: {exc}") from exc
        self._run.succeeded()
        self._offer, self._acknowledged = None, set()

    def _store_answers(self) -> bool:
        """Whether the server answers a ping at once (a slow store, not a lost one)."""
        try:
            with pymongo.timeout(_PROBE_TIMEOUT_S):
                self.collection.database.client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    def _wait_or_give_up(self, exc: PyMongoError, store_answers: bool) -> None:
        if self._run.failed(store_answers):
            attempts = self._run.in_a_row
            self._run.succeeded()
            self._offer, self._acknowledged = None, set()
            why = (
                f"took no document for {self._run.slow_patience_s:.0f} s"
                if store_answers
                else f"failed after {attempts} attempts"
            )
            raise ServiceUnavailableError(f"MongoDB write {why}: {exc}") from exc
        delay = self._run.backoff_s()
        if store_answers:
            log.warning(
                "MongoDB is slow (a write timed out; the server answers a ping): %d documents per request "
                "from now, retrying in %.1f s",
                self.pace.size,
                delay,
            )
        else:
            log.warning("MongoDB write failed (%s); retrying in %.1f s", exc, delay)
        raise SinkBackpressure(delay, str(exc)) from exc

    def flush(self, timeout_s: float) -> None:
        """Nothing is buffered: every write_batch returned once MongoDB acknowledged it."""

    def close(self) -> None:
        """The client is the composition root's (workers.assemble), shared with others: not closed here."""

    def _insert_or_replace(self, documents: list[dict[str, Any]]) -> None:
        try:
            self.collection.insert_many(documents, ordered=False)
            return
        except BulkWriteError as exc:
            if not only_duplicates(exc.details):
                _raise_write_concern(exc.details)
                raise
            existing = [documents[error["index"]] for error in exc.details.get("writeErrors", [])]
        try:
            self.collection.bulk_write(
                [ReplaceOne({"_id": document["_id"]}, document, upsert=True) for document in existing],
                ordered=False,
            )
        except BulkWriteError as exc:
            _raise_write_concern(exc.details)
            raise


def _raise_write_concern(details: Mapping[str, Any]) -> None:
    failures = write_concern_failures(details)
    if failures:
        first = failures[0]
        raise WriteConcernFailed(
            f"{len(failures)} write concern error(s), first: {first.get('errmsg')} "
            f"(code {first.get('code')})",
            first.get("code"),
            first,
        )
