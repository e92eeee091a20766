"""The console's PostgreSQL read model on the real servers: the same inspections give the same list pages and
tiles from MongoDB and PostgreSQL (class filters over detections and class scores, mask flags, overlays
included), keyset pages neither repeat nor skip rows, and the list uses an index."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pymongo.database import Database

from lineguard.console import queries
from lineguard.console.queries import ListFilter
from lineguard.console.queries_pg import PostgresReadModel, list_sql
from mes.migrations import migrate
from mes.writer import PostgresWriter
from quality.generate import generate
from schemas.records import InspectionResult

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 5, tzinfo=UTC)
HOLE = {"label": "hole", "score": 0.8}
_SAME = (
    "_id", "captured_at", "camera_id", "line_id", "verdict", "frame_number", "latency_ms", "has_mask",
    "class_scores", "overlay_boxes",
)  # fmt: skip


def documents() -> list[dict[str, Any]]:
    """The generator's detector results, with some classifier results (class scores, no boxes: a class the
    filter must find only in the scores, one scored under 0.5 it must not) and some anomaly masks."""
    found = [
        *generate(START, hours=3, lines=("L1",)),
        *generate(START, hours=3, lines=("L2",), defects=20),
    ]
    for i, document in enumerate(found):
        if i % 9 == 0:
            document["class_scores"] = [HOLE, {"label": "good", "score": 0.2}]
            document["detections"] = []
        elif i % 9 == 4:
            document["class_scores"] = [{"label": "hole", "score": 0.3}, {"label": "good", "score": 0.7}]
        if i % 5 == 0:
            document["anomaly_mask_png"] = b"\x89PNG mask"
    return found


@pytest.fixture
def stores(
    postgres_uri: str, mongo_db: Database[dict[str, Any]]
) -> tuple[PostgresReadModel, Database[dict[str, Any]]]:
    documents = globals()["documents"]()
    mongo_db["inspections"].insert_many([dict(d) for d in documents])
    queries.ensure_indexes(mongo_db["inspections"])
    with psycopg.connect(postgres_uri) as connection:
        migrate(connection)
        PostgresWriter(connection).write([InspectionResult.from_dict(d) for d in documents])
    return PostgresReadModel(psycopg.connect(postgres_uri, autocommit=True)), mongo_db


def _pages(fetch: Any, selection: ListFilter, limit: int) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        page, cursor = fetch(selection, limit, cursor)
        pages.append([{key: row[key] for key in _SAME} for row in page])
        if cursor is None:
            return pages


@pytest.mark.parametrize(
    "selection",
    [
        ListFilter(),
        ListFilter(line="L2", verdict="DEFECT"),
        ListFilter(since=START + timedelta(hours=1), until=START + timedelta(hours=2)),
        ListFilter(label="hole"),
        ListFilter(label="scratch"),
        ListFilter(label="stain", line="L2"),
        ListFilter(label="hole", verdict="DEFECT"),
    ],
)
def test_pages_match_mongodb_and_never_repeat_or_skip(
    stores: tuple[PostgresReadModel, Database[dict[str, Any]]], selection: ListFilter
) -> None:
    pg, mongo = stores
    from_pg = _pages(pg.list_inspections, selection, 7)
    from_mongo = _pages(lambda s, n, c: queries.list_inspections(mongo["inspections"], s, n, c), selection, 7)
    assert from_pg == from_mongo
    ids = [row["_id"] for page in from_pg for row in page]
    candidates = mongo["inspections"].find(selection.query())
    matching = [d for d in candidates if not selection.label or queries.matches_label(d, selection.label)]
    assert len(ids) == len(set(ids)) == len(matching) > 7
    if selection == ListFilter(label="hole"):  # in the class scores alone; never where scored under 0.5
        assert len(matching) == len([d for d in documents() if d["class_scores"][:1] == [HOLE]])
    masks = {row["has_mask"] for page in from_pg for row in page}
    assert masks == {True, False} or selection.label, masks  # the flag is there, and not everywhere


def test_tiles_match_mongodb(stores: tuple[PostgresReadModel, Database[dict[str, Any]]]) -> None:
    pg, mongo = stores
    now = START + timedelta(hours=2, minutes=30)
    expected = queries.line_tiles(mongo["inspections"], timedelta(minutes=90), now=now)
    assert pg.line_tiles(timedelta(minutes=90), now=now) == expected
    assert [tile["line_id"] for tile in expected] == ["L1", "L2"]


def test_list_query_reads_an_index(stores: tuple[PostgresReadModel, Database[dict[str, Any]]]) -> None:
    pg, _ = stores
    pg.connection.execute("ANALYZE inspections")
    _, cursor = pg.list_inspections(ListFilter(), 50, None)
    for selection in (ListFilter(), ListFilter(camera="cam-L1")):
        query, params = list_sql(selection, 50, cursor)
        with pg.connection.cursor() as cur:
            plan = "\n".join(row[0] for row in cur.execute(f"EXPLAIN {query}", params).fetchall())
        assert "Index" in plan and "Seq Scan" not in plan and "Sort" not in plan.split("Limit", 1)[1], plan


@pytest.mark.parametrize("uri", ["postgresql://lineguard:x@127.0.0.1:1/none", "not a uri="])
def test_a_bad_or_unreachable_postgres_uri_is_one_line_and_exit_2(uri: str) -> None:
    env = {**os.environ, "POSTGRES_URI": uri}
    done = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "console", "--port", "18932"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "postgres" in done.stderr.lower()
    assert "Traceback" not in done.stderr
