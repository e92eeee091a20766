"""Reading the inspection records of a report's range from MongoDB into a :class:`~quality.cube.Cube`.

What runs in the database: the ``$match`` of the range and filters (served by the ``captured_at`` indexes the
worker creates) and a projection to the dozen fields the report uses, so neither masks nor scores of every
class travel. The hourly grouping is folded here, chunk by chunk: FerretDB (the local stack's MongoDB) has no
``$dateTrunc``, ``$cond``, ``$first``/``$push`` accumulators, ``$lookup`` or ``$facet`` (tested against
v1.24), so a time-bucketed ``$group`` cannot run there; folding 50,000 rows at a time keeps memory bounded by
the number of groups. (FerretDB does run a plain ``$group`` by verdict, but in its own process after
reading every document: 15 s per 100,000 documents measured, slower than this fold, so it is not used.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from infra.mongo_access import access_refused
from quality.cube import Cube, CubeBuilder
from quality.query import ReportQuery
from schemas.errors import ServiceUnavailableError
from schemas.inspections import defect_class

log = logging.getLogger(__name__)

PROJECTION = {
    "_id": 0,
    "captured_at": 1,
    "line_id": 1,
    "station_id": 1,
    "camera_id": 1,
    "frame_number": 1,
    "model.version": 1,
    "verdict": 1,
    "part_id": 1,
    "detections.label": 1,
    "class_scores": 1,
    "anomaly_score": 1,
    "metadata.defect_score": 1,
    "metadata.lot": 1,
    "metadata.part_number": 1,
}
BATCH = 5_000


def _documents(collection: Collection[dict[str, Any]], query: ReportQuery) -> Iterator[dict[str, Any]]:
    yield from collection.find(query.mongo_filter(), PROJECTION, batch_size=BATCH)


def load_cube(database: Database[dict[str, Any]], collection: str, query: ReportQuery) -> Cube:
    """The cube of ``query``'s range; ServiceUnavailableError, or ConfigurationError on a refused login."""
    inspections = database[collection]
    try:
        builder = CubeBuilder()
        builder.add_documents(_documents(inspections, query))
        cube = builder.build()
    except OperationFailure as exc:
        refused = access_refused(exc)
        if refused is not None:
            raise refused from None
        raise ServiceUnavailableError(f"MongoDB query failed: {exc}") from exc
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"cannot read inspections from MongoDB: {exc}") from exc
    return cube


def load_labels(
    database: Database[dict[str, Any]], collection: str, labels_collection: str, query: ReportQuery
) -> list[dict[str, Any]]:
    """Human labels joined to the model's verdict of the same frame (FerretDB has no ``$lookup``: two reads).

    One row per labelled frame in range: camera_id, frame_number, model_version, verdict, model_class,
    human_label (the latest ``labelled_at`` wins)."""
    try:
        if labels_collection not in database.list_collection_names():
            return []
        match: dict[str, Any] = {}
        if query.camera is not None:
            match["camera_id"] = query.camera
        latest: dict[tuple[str, int], str] = {}
        fields = {"camera_id": 1, "frame_number": 1, "label": 1, "labelled_at": 1}
        for doc in database[labels_collection].find(match, fields).sort("labelled_at", 1):
            if isinstance(doc.get("label"), str) and doc["label"] and "frame_number" in doc:
                latest[(str(doc["camera_id"]), int(doc["frame_number"]))] = doc["label"]
        rows: list[dict[str, Any]] = []
        keys = list(latest)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            ors = [{"camera_id": camera, "frame_number": frame} for camera, frame in chunk]
            selector = {**query.mongo_filter(), "$or": ors}
            for doc in database[collection].find(selector, PROJECTION):
                key = (doc.get("camera_id", ""), int(doc.get("frame_number", -1)))
                rows.append(
                    {
                        "camera_id": key[0],
                        "frame_number": key[1],
                        "model_version": (doc.get("model") or {}).get("version", ""),
                        "verdict": doc.get("verdict", "UNKNOWN"),
                        "model_class": defect_class(doc),
                        "human_label": latest[key],
                    }
                )
        return rows
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"cannot read labels from MongoDB: {exc}") from exc
