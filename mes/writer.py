"""One batch of results -> PostgreSQL in one transaction: rows upserted, touched windows recomputed.

The rows go through ``COPY`` into a temporary staging table, then one ``INSERT ... SELECT ... ON CONFLICT
(id, captured_at) DO UPDATE``: a replay rewrites the same rows, never adds any. The window counts of every
window the batch touched are then recomputed from the rows (not incremented), so they are idempotent too.
Monthly partitions are created on demand before the insert. The caller commits Kafka offsets only after
:meth:`PostgresWriter.write` returned, that is after PostgreSQL's COMMIT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from infra.sinks import SinkBackpressure
from schemas.inspections import defect_class, result_id
from schemas.records import InspectionResult

COLUMNS = (
    "id", "captured_at", "camera_id", "line_id", "station_id", "frame_number", "part_id", "model_name",
    "model_version", "task", "verdict", "defect_class", "defect_score", "anomaly_score", "detections",
    "received_at", "inferred_at", "worker_id", "source_topic", "source_partition", "source_offset",
    "metadata", "class_scores", "classes", "has_mask",
)  # fmt: skip
_UPDATE = ", ".join(f"{name} = EXCLUDED.{name}" for name in COLUMNS if name not in ("id", "captured_at"))
_COLUMN_LIST = ", ".join(COLUMNS)
OUTAGE_RETRY_S = 0.2  # the first wait after a lost connection (the consumer loop backs off from there)


@dataclass(frozen=True, slots=True)
class Rejected:
    topic: str
    partition: int
    offset: int
    error: str
    payload: bytes | None


def row(result: InspectionResult) -> tuple[object, ...]:
    document = result.to_dict()
    metadata = dict(result.metadata)
    score = metadata.get("defect_score")
    try:
        defect_score = float(score) if score is not None else result.anomaly_score
    except ValueError:
        defect_score = None
    return (
        result_id(result.camera_id, result.frame_number, result.model.version),
        result.captured_at,
        result.camera_id,
        result.line_id,
        result.station_id,
        result.frame_number,
        result.part_id,
        result.model.name,
        result.model.version,
        result.model.task.symbol,
        result.verdict.value,
        defect_class(document) or None,
        defect_score,
        result.anomaly_score,
        json.dumps(document["detections"]),
        result.received_at,
        result.inferred_at,
        result.worker_id,
        result.source.topic,
        result.source.partition,
        result.source.offset,
        json.dumps(metadata),
        json.dumps(document["class_scores"]),
        classes(document),
        result.anomaly_mask_png is not None and len(result.anomaly_mask_png) > 0,
    )


def classes(document: dict[str, Any]) -> list[str]:
    """The classes the console's class filter matches (migration 004): every detection's label and every class
    scored 0.5 or more, the same rule as the MongoDB filter in ``lineguard.console.queries.ListFilter``."""
    found = {str(d["label"]) for d in document["detections"] if d.get("label")}
    found.update(str(s["label"]) for s in document["class_scores"] if float(s.get("score") or 0.0) >= 0.5)
    return sorted(found)


def _month(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


class PostgresWriter:
    """Writes batches on one connection (autocommit off; every :meth:`write` is one transaction)."""

    def __init__(self, connection: psycopg.Connection, window_seconds: int = 60) -> None:
        self.connection = connection
        self.window_seconds = window_seconds
        self._partitions: set[datetime] = set()
        with connection.transaction():
            connection.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staging (LIKE inspections INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )

    def _ensure_partitions(self, months: set[datetime]) -> None:
        for start in sorted(months - self._partitions):
            name = f"inspections_y{start.year:04d}m{start.month:02d}"
            statement = sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF inspections FOR VALUES FROM ({}) TO ({})"
            ).format(sql.Identifier(name), sql.Literal(start), sql.Literal(_next_month(start)))
            self.connection.execute(statement)
            self._partitions.add(start)

    def write(self, results: Sequence[InspectionResult], rejected: Sequence[Rejected] = ()) -> None:
        """Upsert the rows, recompute their windows and keep the rejects, all in one transaction."""
        connection = self.connection
        with connection.transaction():
            if results:
                self._ensure_partitions({_month(result.captured_at) for result in results})
                with connection.cursor() as cursor:
                    with cursor.copy(f"COPY staging ({_COLUMN_LIST}) FROM STDIN") as copy:
                        for result in results:
                            copy.write_row(row(result))
                    cursor.execute(
                        f"INSERT INTO inspections ({_COLUMN_LIST}) "
                        f"SELECT DISTINCT ON (id, captured_at) {_COLUMN_LIST} FROM staging "
                        f"ON CONFLICT (id, captured_at) DO UPDATE SET {_UPDATE}"
                    )
                    self._recompute_windows(cursor)
            if rejected:
                with connection.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO rejected_records "
                        "(source_topic, source_partition, source_offset, error, payload) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(r.topic, r.partition, r.offset, r.error, r.payload) for r in rejected],
                    )

    # -- the Sink interface (infra.sinks) --------------------------------------------------------------
    def write_batch(self, items: Sequence[InspectionResult], rejected: Sequence[Rejected] = ()) -> None:
        """:meth:`write`, with a lost connection reported as :class:`SinkBackpressure` (the transaction
        was rolled back, so the same batch written again leaves the same rows). The hint is the first wait;
        the consumer loop doubles it while the outage lasts and reconnects after each wait."""
        try:
            self.write(items, rejected)
        except psycopg.OperationalError as exc:
            raise SinkBackpressure(OUTAGE_RETRY_S, str(exc).strip()[:200]) from exc

    def flush(self, timeout_s: float) -> None:
        """Nothing is buffered: every batch is committed before write_batch returns."""

    def close(self) -> None:
        """The connection is the consumer's (it reconnects after an outage): not closed here."""

    def _recompute_windows(self, cursor: psycopg.Cursor) -> None:
        window = self.window_seconds
        cursor.execute(
            """
            WITH touched AS (
                SELECT DISTINCT line_id, to_timestamp(floor(extract(epoch FROM captured_at) / %(w)s) * %(w)s)
                       AS window_start
                FROM staging
            )
            INSERT INTO inspection_windows AS w (line_id, station_id, model_version, window_start,
                                                 window_seconds, inspections, ok, defect, uncertain)
            SELECT i.line_id, i.station_id, i.model_version, t.window_start, %(w)s, count(*),
                   count(*) FILTER (WHERE i.verdict = 'OK'),
                   count(*) FILTER (WHERE i.verdict = 'DEFECT'),
                   count(*) FILTER (WHERE i.verdict = 'UNCERTAIN')
            FROM touched t
            JOIN inspections i ON i.line_id = t.line_id
                AND i.captured_at >= t.window_start
                AND i.captured_at < t.window_start + make_interval(secs => %(w)s)
            GROUP BY i.line_id, i.station_id, i.model_version, t.window_start
            ON CONFLICT (line_id, station_id, model_version, window_seconds, window_start) DO UPDATE SET
                inspections = EXCLUDED.inspections, ok = EXCLUDED.ok,
                defect = EXCLUDED.defect, uncertain = EXCLUDED.uncertain
            """,
            {"w": window},
        )
