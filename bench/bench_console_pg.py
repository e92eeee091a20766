"""The console's PostgreSQL read model at scale (issue 12: list and tiles p95 <= 300 ms at 1M inspections).

COPYs ``--docs`` generated inspections (10 lines, quality/generate.py, as the rows ``lineguard sink postgres``
writes: mes.writer.row) into a fresh database of ``POSTGRES_URI``, migrated (001-003), then times the list
page (first page, a deep keyset page, filtered pages) and the tiles, printing p50/p95 and the EXPLAIN plans.
The database is dropped afterwards.

    nice -n 10 .venv/bin/python bench/bench_console_pg.py --docs 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from lineguard.console.queries import ListFilter
from lineguard.console.queries_pg import PostgresReadModel, list_sql
from mes.migrations import migrate
from mes.writer import COLUMNS, row
from quality.generate import generate
from schemas.records import InspectionResult

START = datetime(2026, 1, 1, tzinfo=UTC)
LINES = tuple(f"L{i}" for i in range(1, 11))


def load(connection: psycopg.Connection, docs: int) -> tuple[int, datetime]:
    hours = max(1, round(docs / (len(LINES) * 102)))
    end = START + timedelta(hours=hours)
    month = START
    with connection.transaction():
        while month < end:
            following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
            connection.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF inspections FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(f"inspections_y{month.year:04d}m{month.month:02d}"),
                    sql.Literal(month),
                    sql.Literal(following),
                )
            )
            month = following
    loaded = 0
    with (
        connection.transaction(),
        connection.cursor() as cursor,
        cursor.copy(f"COPY inspections ({', '.join(COLUMNS)}) FROM STDIN") as copy,
    ):
        for document in generate(START, hours=hours, lines=LINES):
            copy.write_row(row(InspectionResult.from_dict(document)))
            loaded += 1
    connection.execute("ANALYZE inspections")
    connection.commit()
    return loaded, end


def timed(action: Callable[[], object], runs: int) -> dict[str, float]:
    action()  # warm the cache once: the figures are for a running console
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        action()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (runs - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    uri = os.environ.get("POSTGRES_URI")
    if not uri:
        raise SystemExit("bench_console_pg: set POSTGRES_URI (source /tmp/stack_exports.txt)")
    name = f"bench_console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(uri, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    figures: dict[str, object] = {}
    try:
        db_uri = uri.rsplit("/", 1)[0] + "/" + name
        with psycopg.connect(db_uri) as connection:
            migrate(connection)
            t0 = time.perf_counter()
            figures["rows"], end = load(connection, args.docs)
            figures["load_s"] = round(time.perf_counter() - t0, 1)
        model = PostgresReadModel(psycopg.connect(db_uri, autocommit=True))
        deep = None
        for _ in range(200):  # 200 pages of 50 in: a deep keyset cursor
            _, deep = model.list_inspections(ListFilter(), 50, deep)
        cases: dict[str, tuple[ListFilter, str | None]] = {
            "first_page": (ListFilter(), None),
            "deep_page_10k": (ListFilter(), deep),
            "camera": (ListFilter(camera=f"cam-{LINES[3]}"), None),
            "line_defect": (ListFilter(line="L2", verdict="DEFECT"), None),
            "version_range": (
                ListFilter(model_version="v1", since=end - timedelta(days=7), until=end - timedelta(days=6)),
                None,
            ),
        }
        for label, (selection, cursor) in cases.items():

            def page(s: ListFilter = selection, c: str | None = cursor) -> object:
                return model.list_inspections(s, 50, c)

            figures[label] = timed(page, args.runs)
            query, params = list_sql(selection, 50, cursor)
            plan = model.connection.execute(f"EXPLAIN {query}", params).fetchall()
            print(f"-- {label}\n" + "\n".join(line[0] for line in plan))
        for minutes in (15, 60):

            def tiles(m: int = minutes) -> object:
                return model.line_tiles(timedelta(minutes=m), now=end)

            figures[f"tiles_{minutes}m"] = timed(tiles, args.runs)
        plan = model.connection.execute(
            "EXPLAIN SELECT line_id, verdict, count(*) FROM inspections WHERE captured_at >= %s "
            "GROUP BY line_id, verdict",
            (end - timedelta(minutes=60),),
        ).fetchall()
        print("-- tiles_60m\n" + "\n".join(line[0] for line in plan))
        model.connection.close()
    finally:
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
