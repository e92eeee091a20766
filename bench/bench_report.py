"""`lineguard report` over many inspection documents: wall time and peak RSS of the report process.

Loads ``--docs`` generated inspection documents (a month of 10 lines, see quality/generate.py) into a fresh
database of the stack's MongoDB (FerretDB here), then runs ``lineguard report`` over the whole range as a
child process and prints its wall time, its peak RSS (ru_maxrss of the child) and the load rate. The database
is dropped afterwards unless ``--keep``.

    .venv/bin/python bench/bench_report.py --docs 200000 [--json]
    .venv/bin/python bench/bench_report.py --docs 0 --fold-docs 1000000   # the report's own work only
    .venv/bin/python bench/bench_report.py --postgres --docs 1000000      # the MES sink's PostgreSQL tables

``--postgres`` COPYs the same generated documents, as the rows ``lineguard sink postgres`` writes
(mes.writer.row), into a fresh database of ``POSTGRES_URI`` (else a throwaway local server) and times
``lineguard report --source postgres`` over them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

from pymongo import ASCENDING, DESCENDING, MongoClient

from lineguard.stack.endpoints import resolve_endpoints
from quality.generate import generate

START = datetime(2026, 1, 1, tzinfo=UTC)
LINES = tuple(f"L{i}" for i in range(1, 11))


def fold_in_process(docs: int) -> dict[str, object]:
    """The report's own work without the database: generate, fold and tabulate ``docs`` documents here."""
    from quality.cube import CubeBuilder
    from quality.shifts import ShiftCalendar
    from quality.tables import build_report

    hours = max(1, round(docs / (len(LINES) * 102)))
    t0 = time.perf_counter()
    builder = CubeBuilder()
    builder.add_documents(generate(START, hours=hours, lines=LINES))
    cube = builder.build()
    report = build_report(cube, ShiftCalendar.parse("early=06,late=14,night=22"))
    elapsed = time.perf_counter() - t0
    return {
        "fold_docs": cube.total,
        "fold_s_including_generation": round(elapsed, 1),
        "fold_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "fold_yield_check": round(report.summary["inspection_yield"], 4),
    }


def _child_report(args: list[str], env: dict[str, str]) -> tuple[float, int, dict[str, object]]:
    """Wall seconds, peak RSS (MB) and JSON summary of ``lineguard report`` as a child process."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "lineguard.cli", "report", *args, "--out", out, "--json"],
            capture_output=True, text=True, env={**os.environ, **env}, check=False,
        )  # fmt: skip
        wall = round(time.perf_counter() - t0, 1)
    if done.returncode != 0:
        raise SystemExit(f"report failed: {done.stderr.strip()}")
    rss = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return wall, rss, json.loads(done.stdout)


def bench_postgres(docs: int, uri: str | None) -> dict[str, object]:
    """Loads ``docs`` generated rows into PostgreSQL by COPY, then times the report over them."""
    import psycopg
    from psycopg import sql

    from mes.migrations import migrate
    from mes.writer import COLUMNS, row
    from schemas.records import InspectionResult

    server = None
    if uri is None:  # a throwaway server of the machine's binaries, as `lineguard stack up --with postgres`
        from lineguard.stack.postgres import local_server

        server = local_server(Path(tempfile.mkdtemp(prefix="bench-pg-")))
        server.start()
        uri = str(server.uri)
    name = f"bench_report_{uuid.uuid4().hex[:8]}"
    hours = max(1, round(docs / (len(LINES) * 102)))
    figures: dict[str, object] = {"source": "postgres", "database": name}
    try:
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        db_uri = uri.rsplit("/", 1)[0] + "/" + name
        with psycopg.connect(db_uri) as connection:
            migrate(connection)
            month = datetime(START.year, START.month, 1, tzinfo=UTC)
            with connection.transaction():
                while month < START + timedelta(hours=hours):
                    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
                    statement = sql.SQL(
                        "CREATE TABLE {} PARTITION OF inspections FOR VALUES FROM ({}) TO ({})"
                    )
                    partition = f"inspections_y{month.year:04d}m{month.month:02d}"
                    connection.execute(
                        statement.format(
                            sql.Identifier(partition), sql.Literal(month), sql.Literal(following)
                        )
                    )
                    month = following
            t0 = time.perf_counter()
            loaded = 0
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY inspections ({', '.join(COLUMNS)}) FROM STDIN") as copy,
            ):
                for document in generate(START, hours=hours, lines=LINES):
                    copy.write_row(row(InspectionResult.from_dict(document)))
                    loaded += 1
            connection.commit()
            figures["load_rows_per_s"] = round(loaded / (time.perf_counter() - t0))
            connection.execute("ANALYZE inspections")
            connection.commit()
        figures["docs"] = loaded
        end = START + timedelta(hours=hours)
        wall, rss, summary = _child_report(
            ["--source", "postgres", "--from", START.isoformat(), "--to", end.isoformat()],
            {"POSTGRES_URI": db_uri},
        )
        figures["report_s"] = wall
        figures["report_peak_rss_mb"] = rss
        figures["report_inspections"] = summary["inspections"]
        figures["report_docs_per_s"] = round(int(summary["inspections"]) / wall)  # type: ignore[call-overload]
    finally:
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if server is not None:
            server.purge()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--database", default=None, help="reuse a loaded database (skips the load)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--fold-docs", type=int, default=0, help="also fold this many documents in process")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="the MES sink's PostgreSQL, not MongoDB")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    if args.postgres:
        figures.update(bench_postgres(args.docs, os.environ.get("POSTGRES_URI") or None))
        print(json.dumps(figures) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in figures.items()))
        return
    if args.docs == 0 and args.database is None:  # --docs 0: only the in-process fold
        figures.update(fold_in_process(args.fold_docs or 1_000_000))
        print(json.dumps(figures) if args.json else "\n".join(f"{k:>28}: {v}" for k, v in figures.items()))
        return

    uri = resolve_endpoints().mongodb_uri
    client: MongoClient[dict] = MongoClient(uri)
    name = args.database or f"bench_report_{uuid.uuid4().hex[:8]}"
    collection = client[name]["inspections"]
    hours = max(1, round(args.docs / (len(LINES) * 102)))
    figures["database"] = name
    try:
        if args.database is None:
            collection.create_index(
                [("line_id", ASCENDING), ("captured_at", DESCENDING)], name="line_captured"
            )
            t0 = time.perf_counter()
            documents = generate(START, hours=hours, lines=LINES)
            loaded = 0
            while batch := list(islice(documents, 5_000)):
                collection.insert_many(batch, ordered=False)
                loaded += len(batch)
            figures["load_docs_per_s"] = round(loaded / (time.perf_counter() - t0))
        figures["docs"] = collection.estimated_document_count()
        end = START + timedelta(hours=hours)
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "lineguard.cli", "report", "--database", name,
                 "--from", START.isoformat(), "--to", end.isoformat(), "--out", out, "--json"],
                capture_output=True, text=True, env={**os.environ, "MONGODB_URI": uri}, check=False,
            )  # fmt: skip
            figures["report_s"] = round(time.perf_counter() - t0, 1)
        if done.returncode != 0:
            raise SystemExit(f"report failed: {done.stderr.strip()}")
        figures["report_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        summary = json.loads(done.stdout)
        figures["report_inspections"] = summary["inspections"]
        figures["report_docs_per_s"] = round(summary["inspections"] / float(figures["report_s"]))  # type: ignore[arg-type]
        if args.fold_docs:  # after the child ran: a child's ru_maxrss counts what it inherited at fork
            figures.update(fold_in_process(args.fold_docs))
    finally:
        if not args.keep and args.database is None:
            client.drop_database(name)
        client.close()
    print(json.dumps(figures) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
