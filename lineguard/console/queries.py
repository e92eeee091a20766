"""The console's MongoDB questions: a filtered inspection list paginated by key, one frame's results, per-line
tiles aggregated by MongoDB over a time window, and the indexes those need.

Pagination is by key, never by skip: the cursor is the (captured_at, _id) of the last row shown, so page 1000
costs what page 1 costs. Tiles group by (line, verdict) in MongoDB and fold the few resulting rows here
(FerretDB does not implement ``$cond``, so counting verdicts by grouping works on both servers).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from schemas.records import Verdict

PAGE_LIMIT_MAX = 200
# The workers create line_captured, verdict_captured and camera_frame; the console adds what its own
# filters and its unfiltered newest-first list need.
CONSOLE_INDEXES: tuple[tuple[str, list[tuple[str, int]]], ...] = (
    ("captured_id", [("captured_at", DESCENDING), ("_id", DESCENDING)]),
    ("camera_captured", [("camera_id", ASCENDING), ("captured_at", DESCENDING)]),
    ("version_captured", [("model.version", ASCENDING), ("captured_at", DESCENDING)]),
    ("line_captured", [("line_id", ASCENDING), ("captured_at", DESCENDING)]),
    ("verdict_captured", [("verdict", ASCENDING), ("captured_at", DESCENDING)]),
    ("camera_frame", [("camera_id", ASCENDING), ("frame_number", ASCENDING)]),
)
_LIST_FIELDS = {"anomaly_mask_png": 0}


class BadQuery(ValueError):
    """A filter or cursor the user sent that cannot be used (answered with a 400)."""


def ensure_indexes(collection: Collection[dict[str, Any]]) -> None:
    existing = set(collection.index_information())
    for name, keys in CONSOLE_INDEXES:
        if name not in existing:
            collection.create_index(keys, name=name)


@dataclass(frozen=True, slots=True)
class ListFilter:
    line: str | None = None
    camera: str | None = None
    label: str | None = None  # a class: a detection's label, or a class scored at 0.5 or more
    verdict: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.line:
            query["line_id"] = self.line
        if self.camera:
            query["camera_id"] = self.camera
        if self.verdict:
            if self.verdict not in Verdict.__members__:
                raise BadQuery(f"verdict must be one of {', '.join(Verdict.__members__)}")
            query["verdict"] = self.verdict
        if self.model_version:
            query["model.version"] = self.model_version
        if self.label:
            # candidates only: FerretDB has no $elemMatch on a sub-document's fields, so the score's
            # threshold is checked by matches_label on the rows read (list_inspections)
            query["$or"] = [{"detections.label": self.label}, {"class_scores.label": self.label}]
        window: dict[str, datetime] = {}
        if self.since:
            window["$gte"] = self.since
        if self.until:
            window["$lt"] = self.until
        if window:
            query["captured_at"] = window
        return query


def parse_time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{name} must be an ISO 8601 time, e.g. 2026-12-02T21:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(document: dict[str, Any]) -> str:
    raw = json.dumps([_utc(document["captured_at"]).isoformat(), document["_id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        moment, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(moment), str(key)
    except (ValueError, TypeError):
        raise BadQuery("cursor is not one this console handed out") from None


def list_inspections(
    collection: Collection[dict[str, Any]], selection: ListFilter, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise BadQuery(f"limit must be 1-{PAGE_LIMIT_MAX}")
    query = selection.query()
    if cursor:
        moment, key = decode_cursor(cursor)
        after = {"$or": [{"captured_at": {"$lt": moment}}, {"captured_at": moment, "_id": {"$lt": key}}]}
        query = {"$and": [query, after]} if query else after
    found = collection.find(query, _LIST_FIELDS).sort([("captured_at", DESCENDING), ("_id", DESCENDING)])
    if selection.label:  # candidates read in key order until a page (and one more) matches
        label = selection.label
        matching = (row for row in found.batch_size(4 * (limit + 1)) if matches_label(row, label))
        rows = list(islice(matching, limit + 1))
        found.close()
    else:
        rows = list(found.limit(limit + 1))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    masked = _with_mask(collection, [row["_id"] for row in rows[:limit]])
    return [public_document(row, row["_id"] in masked) for row in rows[:limit]], next_cursor


def matches_label(row: dict[str, Any], label: str) -> bool:
    """The class filter's rule (the PostgreSQL sink computes the same into ``classes``, mes.writer)."""
    return any(d.get("label") == label for d in row.get("detections") or []) or any(
        s.get("label") == label and float(s.get("score") or 0.0) >= 0.5 for s in row.get("class_scores") or []
    )


def _with_mask(collection: Collection[dict[str, Any]], ids: list[Any]) -> set[Any]:
    """The ids of a page that have a mask (the list reads no mask bytes; one ``_id`` lookup says which)."""
    if not ids:
        return set()
    query = {"_id": {"$in": ids}, "anomaly_mask_png": {"$type": "binData"}}
    return {row["_id"] for row in collection.find(query, {"_id": 1})}


class MongoReadModel:
    """The list page and tiles on MongoDB (the default read model; queries_pg.PostgresReadModel at scale)."""

    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self.collection = collection

    def list_inspections(
        self, selection: ListFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return list_inspections(self.collection, selection, limit, cursor)

    def line_tiles(self, window: timedelta, now: datetime | None = None) -> list[dict[str, Any]]:
        return line_tiles(self.collection, window, now)


def frame_results(collection: Collection[dict[str, Any]], camera: str, number: int) -> list[dict[str, Any]]:
    """Every model version's result for one frame, newest inference first."""
    rows = collection.find({"camera_id": camera, "frame_number": number}).sort("inferred_at", DESCENDING)
    return [public_document(row) for row in rows]


def line_tiles(
    collection: Collection[dict[str, Any]], window: timedelta, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per line over the last ``window``: frames/min, defect rate, yield (OK share), verdict counts."""
    since = (now or datetime.now(UTC)) - window
    pipeline: list[dict[str, Any]] = [
        {"$match": {"captured_at": {"$gte": since}}},
        {"$group": {"_id": {"line": "$line_id", "verdict": "$verdict"}, "n": {"$sum": 1}}},
    ]
    counts: dict[str, dict[str, int]] = {}
    for row in collection.aggregate(pipeline):
        counts.setdefault(str(row["_id"]["line"]), {})[str(row["_id"]["verdict"])] = int(row["n"])
    return tiles_from_counts(counts, window)


def tiles_from_counts(counts: dict[str, dict[str, int]], window: timedelta) -> list[dict[str, Any]]:
    """Per-line tiles from verdict counts per line over ``window`` (both read models count, this shapes)."""
    minutes = window.total_seconds() / 60
    tiles = []
    for line, verdicts in sorted(counts.items()):
        frames = sum(verdicts.values())
        tiles.append(
            {
                "line_id": line,
                "frames": frames,
                "frames_per_min": round(frames / minutes, 2),
                "defect_rate": round(verdicts.get("DEFECT", 0) / frames, 4),
                "yield": round(verdicts.get("OK", 0) / frames, 4),
                "verdicts": verdicts,
            }
        )
    return tiles


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def public_document(row: dict[str, Any], has_mask: bool | None = None) -> dict[str, Any]:
    """An inspection document as JSON-ready data: ISO times, no mask bytes (served on their own URL);
    ``has_mask`` where the row was read without them."""
    out = {key: value for key, value in row.items() if key != "anomaly_mask_png"}
    out["has_mask"] = bool(row.get("anomaly_mask_png")) if has_mask is None else has_mask
    for name in ("captured_at", "received_at", "inferred_at"):
        if isinstance(out.get(name), datetime):
            out[name] = _utc(out[name]).isoformat()
    try:
        latency = _utc(row["inferred_at"]) - _utc(row["captured_at"])
        out["latency_ms"] = round(latency.total_seconds() * 1000, 1)
    except (KeyError, TypeError):
        out["latency_ms"] = None
    out["overlay_boxes"] = overlay_boxes(row)
    return out


def overlay_boxes(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The boxes the viewer draws: the detections, or for a classifier's defect the whole frame labelled with
    its most likely defect class (what the worker's defect event carries too)."""
    boxes = [
        {**d["box"], "label": d.get("label"), "score": d.get("score")}
        for d in row.get("detections") or []
        if isinstance(d.get("box"), dict)
    ]
    if boxes or row.get("verdict") not in ("DEFECT", "UNCERTAIN"):
        return boxes
    defects = [s for s in row.get("class_scores") or [] if s.get("label") != "good"]
    if not defects:
        return []
    top = max(defects, key=lambda s: s["score"])
    return [
        {"label": top["label"], "x_min": 0.0, "y_min": 0.0, "x_max": 1.0, "y_max": 1.0, "score": top["score"]}
    ]
