"""`lineguard report --source postgres` on the real PostgreSQL: the same week as MongoDB, table by table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from mes.migrations import migrate
from mes.writer import PostgresWriter
from quality.generate import generate
from schemas.records import InspectionResult

pytestmark = pytest.mark.integration

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
DAY = ("--from", "2026-01-05T00:00Z", "--to", "2026-01-06T00:00Z")


def _week() -> list[dict[str, Any]]:
    # L1: 24 h x 100 parts, 5 DEFECT + 2 UNCERTAIN re-inspected OK -> 2,448 rows; L2 the same with 20 DEFECT
    return [
        *generate(MONDAY, hours=24, lines=("L1",)),
        *generate(MONDAY, hours=24, lines=("L2",), defects=20),
    ]


def _report(env: dict[str, str], out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "report", *DAY, "--out", str(out), "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


@pytest.fixture
def loaded(postgres_uri: str, mongo_db: Database[dict[str, Any]]) -> tuple[str, Database[dict[str, Any]]]:
    documents = _week()
    mongo_db["inspections"].insert_many([dict(document) for document in documents])
    with psycopg.connect(postgres_uri) as connection:
        migrate(connection)
        # the sink's own writer (the rows `lineguard sink postgres` writes), in batches like the sink
        writer = PostgresWriter(connection)
        results = [InspectionResult.from_dict(document) for document in documents]
        for start in range(0, len(results), 1_000):
            writer.write(results[start : start + 1_000])
    return postgres_uri, mongo_db


@pytest.mark.parametrize("filters", [(), ("--line", "L2", "--station", "L2-S1", "--camera", "cam-L2")])
def test_postgres_and_mongodb_give_the_same_report_tables(
    endpoints: Endpoints,
    loaded: tuple[str, Database[dict[str, Any]]],
    tmp_path: Path,
    filters: tuple[str, ...],
) -> None:
    uri, mongo_db = loaded
    from_mongo = _report(
        {"MONGODB_URI": endpoints.mongodb_uri}, tmp_path / "mongo", "--database", mongo_db.name, *filters
    )
    from_pg = _report({"POSTGRES_URI": uri}, tmp_path / "pg", "--source", "postgres", *filters)
    assert from_mongo.returncode == 0, from_mongo.stderr
    assert from_pg.returncode == 0, from_pg.stderr
    assert "no human labels" in from_pg.stderr
    summary = json.loads(from_pg.stdout)
    if filters:  # L2 alone, by hand: 24 h x (100 parts + 2 re-inspections); 20 + 2 bad first, 20 bad last
        assert summary["inspections"] == 24 * 102
        assert summary["first_pass_yield"] == pytest.approx(0.78)
        assert summary["final_yield"] == pytest.approx(0.80)
    else:
        assert summary["inspections"] == 2 * 24 * 102
        assert summary["lines"] == ["L1", "L2"]
    assert summary == json.loads(from_mongo.stdout)
    mongo_tables = sorted(p.name for p in (tmp_path / "mongo" / "tables").glob("*.csv"))
    pg_tables = sorted(p.name for p in (tmp_path / "pg" / "tables").glob("*.csv"))
    assert pg_tables == mongo_tables and "p_chart.csv" in pg_tables
    for name in pg_tables:
        pg_text = (tmp_path / "pg" / "tables" / name).read_text()
        assert pg_text == (tmp_path / "mongo" / "tables" / name).read_text(), name


def test_postgres_source_with_nothing_in_range_or_no_table(postgres_uri: str, tmp_path: Path) -> None:
    done = _report({"POSTGRES_URI": postgres_uri}, tmp_path, "--source", "postgres")
    assert done.returncode == 2 and "no table 'inspections'" in done.stderr
    assert "Traceback" not in done.stderr
    with psycopg.connect(postgres_uri) as connection:
        migrate(connection)
    empty = _report({"POSTGRES_URI": postgres_uri}, tmp_path, "--source", "postgres")
    assert empty.returncode == 1 and "nothing to report" in empty.stderr
    wrong = _report({}, tmp_path, "--source", "sqlite")
    assert wrong.returncode == 2 and "--source 'sqlite'" in wrong.stderr
    missing = postgres_uri.rsplit("/", 1)[0] + "/no_such_database"
    refused = _report({"POSTGRES_URI": missing}, tmp_path, "--source", "postgres")
    assert refused.returncode == 2 and "PostgreSQL refused the login" in refused.stderr
    down = _report({}, tmp_path, "--source", "postgres", "--postgres-uri", "postgresql://u@127.0.0.1:9/x")
    assert down.returncode == 2 and "cannot read inspections from PostgreSQL" in down.stderr
    assert "Traceback" not in refused.stderr + down.stderr
