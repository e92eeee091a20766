"""Reading the inspection rows of a report's range from the MES sink's PostgreSQL table into a Cube.

The table is the one ``lineguard sink postgres`` writes (``inspections``, documented in mes/migrations): read
here by its columns only, so quality/ does not import mes/ (siblings on the same floor). Unlike FerretDB,
PostgreSQL filters in the server: the range prunes the monthly partitions and the line filter uses
``inspections_line_captured``; camera, station and model version are plain equality predicates on the rows the
range already selected (a report's range is the narrow part). The rows stream through a server-side (named)
cursor, ``BATCH`` at a time, into the same :class:`~quality.cube.CubeBuilder` as the MongoDB source, so memory
stays bounded by the groups, not by the rows.

Human labels live in MongoDB (the console writes them), not in the sink's tables: a report from PostgreSQL has
no label agreement table (the CLI says so in one line).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from infra.postgres_access import refused
from quality.cube import Cube, CubeBuilder
from quality.query import ReportQuery
from schemas.errors import ConfigurationError, ServiceUnavailableError
from schemas.inspections import NO_CLASS

BATCH = 20_000
# the flat row of quality.cube.flat_row, column by column; defect_score is already the worker's image-level
# score (metadata.defect_score, else anomaly_score), as the sink computes it
_SELECT = (
    "SELECT captured_at, line_id, station_id, camera_id, model_version, verdict, defect_class, "
    "coalesce(metadata->>'lot', ''), coalesce(metadata->>'part_number', ''), coalesce(part_id, ''), "
    "defect_score FROM {table} WHERE captured_at >= %s AND captured_at < %s"
)
_FIELDS = (
    "captured_at", "line_id", "station_id", "camera_id", "model_version", "verdict", "defect_class", "lot",
    "part_number", "part_id", "score",
)  # fmt: skip


def select_statement(
    query: ReportQuery, table: str = "inspections"
) -> tuple[sql.Composed, list[datetime | str]]:
    """The SELECT of ``query``'s range and filters, with its parameters."""
    text = _SELECT
    params: list[datetime | str] = [query.start, query.end]
    for column, value in (
        ("line_id", query.line),
        ("camera_id", query.camera),
        ("station_id", query.station),
        ("model_version", query.model_version),
    ):
        if value is not None:
            text += f" AND {column} = %s"
            params.append(value)
    return sql.SQL(text).format(table=sql.Identifier(table)), params


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(_FIELDS, values, strict=True))
    if row["verdict"] != "DEFECT":  # as schemas.inspections.defect_class: only defects have a class
        row["defect_class"] = NO_CLASS
    elif not row["defect_class"]:
        row["defect_class"] = "unclassified"
    return row


def load_cube_pg(uri: str, query: ReportQuery, table: str = "inspections") -> Cube:
    """The cube of ``query``'s range from PostgreSQL; ConfigurationError on a refused login or missing table,
    ServiceUnavailableError when the server cannot be reached or the read fails."""
    statement, params = select_statement(query, table)
    try:
        # a named cursor is a server-side cursor: rows come BATCH at a time, never all at once
        with (
            psycopg.connect(uri, connect_timeout=10) as connection,
            connection.cursor(name="lineguard_report") as cursor,
        ):
            cursor.itersize = BATCH
            cursor.execute(statement, params)
            builder = CubeBuilder()
            while rows := cursor.fetchmany(BATCH):
                for values in rows:
                    builder.add(_row(values))
            return builder.build()
    except psycopg.errors.UndefinedTable:
        raise ConfigurationError(
            f"PostgreSQL has no table {table!r}: has `lineguard sink postgres` run on this database?"
        ) from None
    except psycopg.OperationalError as exc:
        refusal = refused(exc)
        if refusal is not None:
            raise refusal from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ServiceUnavailableError(f"cannot read inspections from PostgreSQL ({reason})") from None
    except psycopg.Error as exc:
        raise ServiceUnavailableError(f"PostgreSQL query failed: {type(exc).__name__}") from None
