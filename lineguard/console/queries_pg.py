"""The console's list and tile questions served from the MES PostgreSQL tables (issue 12's scale target).

Same answers and return types as :mod:`lineguard.console.queries` (MongoDB), so a handler takes either
behind :class:`ReadModel`. Pagination is by key: ``(captured_at, id) < (cursor)`` as a row comparison, which
PostgreSQL turns into an index range on ``inspections_captured_id`` (migration 003), so a deep page costs
what the first one costs. Class scores, the classes the class filter matches and the mask flag come from
migration 004's columns (the mask's bytes stay in MongoDB, which serves the frame viewer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row

from lineguard.console.queries import (
    PAGE_LIMIT_MAX,
    BadQuery,
    ListFilter,
    decode_cursor,
    encode_cursor,
    overlay_boxes,
    tiles_from_counts,
)
from schemas.records import Verdict

_FIELDS = (
    "id, captured_at, camera_id, line_id, station_id, frame_number, part_id, model_name, model_version, "
    "task, verdict, defect_class, defect_score, anomaly_score, detections, received_at, inferred_at, "
    "worker_id, class_scores, classes, has_mask, "
    "source_topic, source_partition, source_offset"
)


class ReadModel(Protocol):
    """What the list page and the tiles need, whichever store answers."""

    def list_inspections(
        self, selection: ListFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def line_tiles(self, window: timedelta, now: datetime | None = None) -> list[dict[str, Any]]: ...


def where(selection: ListFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions and parameters of a filter (the same meaning as ``ListFilter.query`` on MongoDB)."""
    terms: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("line_id", selection.line),
        ("camera_id", selection.camera),
        ("model_version", selection.model_version),
    ):
        if value:
            terms.append(f"{column} = %s")
            params.append(value)
    if selection.verdict:
        if selection.verdict not in Verdict.__members__:
            raise BadQuery(f"verdict must be one of {', '.join(Verdict.__members__)}")
        terms.append("verdict = %s")
        params.append(selection.verdict)
    if selection.label:
        # classes: each detection's label and each class scored >= 0.5 (the sink applies the MongoDB rule)
        terms.append("classes @> ARRAY[%s]::text[]")
        params.append(selection.label)
    if selection.since:
        terms.append("captured_at >= %s")
        params.append(selection.since)
    if selection.until:
        terms.append("captured_at < %s")
        params.append(selection.until)
    return terms, params


def list_sql(selection: ListFilter, limit: int, cursor: str | None) -> tuple[str, list[Any]]:
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise BadQuery(f"limit must be 1-{PAGE_LIMIT_MAX}")
    terms, params = where(selection)
    if cursor:
        moment, key = decode_cursor(cursor)
        terms.append("(captured_at, id) < (%s, %s)")
        params.extend([moment, key])
    clause = f"WHERE {' AND '.join(terms)}" if terms else ""
    params.append(limit + 1)
    return f"SELECT {_FIELDS} FROM inspections {clause} ORDER BY captured_at DESC, id DESC LIMIT %s", params


def document(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the Mongo query layer's public document (the fields the list page shows)."""
    out: dict[str, Any] = {
        "_id": row["id"],
        "camera_id": row["camera_id"],
        "line_id": row["line_id"],
        "station_id": row["station_id"],
        "frame_number": row["frame_number"],
        "part_id": row["part_id"],
        "model": {"name": row["model_name"], "version": row["model_version"], "task": row["task"]},
        "verdict": row["verdict"],
        "defect_class": row["defect_class"],
        "anomaly_score": row["anomaly_score"],
        "detections": row["detections"],
        "worker_id": row["worker_id"],
        "source": {
            "topic": row["source_topic"],
            "partition": row["source_partition"],
            "offset": row["source_offset"],
        },
        "class_scores": row["class_scores"],
        "has_mask": row["has_mask"],
    }
    for name in ("captured_at", "received_at", "inferred_at"):
        out[name] = row[name].astimezone(UTC).isoformat()
    out["latency_ms"] = round((row["inferred_at"] - row["captured_at"]).total_seconds() * 1000, 1)
    out["overlay_boxes"] = overlay_boxes(out)
    return out


class PostgresReadModel:
    """The console's read model on the MES tables (one connection, autocommit: reads only)."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def list_inspections(
        self, selection: ListFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        query, params = list_sql(selection, limit, cursor)
        with self.connection.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, params).fetchall()
        page = [document(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return page, None
        last = rows[limit - 1]
        return page, encode_cursor({"captured_at": last["captured_at"], "_id": last["id"]})

    def line_tiles(self, window: timedelta, now: datetime | None = None) -> list[dict[str, Any]]:
        """As ``queries.line_tiles``: counted from the rows (an index range on captured_at), because the
        sink's minute windows would round the window's start."""
        since = (now or datetime.now(UTC)) - window
        with self.connection.cursor() as cur:
            rows = cur.execute(
                "SELECT line_id, verdict, count(*) FROM inspections WHERE captured_at >= %s "
                "GROUP BY line_id, verdict",
                (since,),
            ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for line, verdict, n in rows:
            counts.setdefault(str(line), {})[str(verdict)] = int(n)
        return tiles_from_counts(counts, window)
