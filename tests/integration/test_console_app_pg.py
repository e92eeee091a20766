"""The console's HTTP API on the PostgreSQL read model against real PostgreSQL, MongoDB and Kafka: the same
inspections in both stores give the same list pages (filters, classes, masks, cursors), tiles and frames from
the PostgreSQL-backed app as from the MongoDB-backed one, and bad query parameters are clear 400s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from pymongo.database import Database

from lineguard.console import queries
from lineguard.console.queries_pg import PostgresReadModel
from mes.migrations import migrate
from mes.writer import PostgresWriter
from quality.generate import generate
from schemas.records import InspectionResult
from schemas.topics import TopicNames
from tests.integration.test_console_support import add_users, served_console, signed_in

pytestmark = pytest.mark.integration

# the tiles count the last minutes before now: the data ends a little before the test runs
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
_SAME = (
    "_id", "captured_at", "camera_id", "line_id", "verdict", "frame_number", "part_id", "model",
    "latency_ms", "has_mask", "class_scores", "detections", "overlay_boxes", "source",
)  # fmt: skip


def _documents() -> list[dict[str, Any]]:
    found = [*generate(START, hours=2, lines=("L1",)), *generate(START, hours=2, lines=("L2",), defects=20)]
    for i, document in enumerate(found):
        if i % 9 == 0:  # a classifier's result: the class is in the scores only
            document["class_scores"] = [{"label": "hole", "score": 0.8}, {"label": "good", "score": 0.2}]
            document["detections"] = []
        if i % 5 == 0:
            document["anomaly_mask_png"] = b"\x89PNG mask"
    return found


def _pages(client: httpx.Client, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        answer = client.get("/api/inspections", params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([{key: row[key] for key in _SAME} for row in body["items"]])
        cursor = body["next"]
        if cursor is None:
            return pages


def test_the_postgres_backed_app_answers_as_the_mongodb_backed_one(
    postgres_uri: str,
    mongo_db: Database[dict[str, Any]],
    kafka_config: dict[str, Any],
    topics: TopicNames,
) -> None:
    documents = _documents()
    mongo_db["inspections"].insert_many([dict(d) for d in documents])
    queries.ensure_indexes(mongo_db["inspections"])
    with psycopg.connect(postgres_uri) as connection:
        migrate(connection)
        PostgresWriter(connection).write([InspectionResult.from_dict(d) for d in documents])
    add_users(mongo_db)
    read_model = PostgresReadModel(psycopg.connect(postgres_uri, autocommit=True))
    with (
        served_console(mongo_db, kafka_config, topics) as on_mongo,
        served_console(mongo_db, kafka_config, topics, read_model=read_model) as on_pg,
    ):
        mongo_client, _ = signed_in(on_mongo.url, "vera")
        pg_client, _ = signed_in(on_pg.url, "vera")
        middle = (START + timedelta(minutes=30)).isoformat()
        listings: tuple[dict[str, Any], ...] = (
            {"limit": 25},
            {"limit": 9, "line": "L2", "verdict": "DEFECT"},
            {"limit": 9, "label": "hole"},
            {"limit": 9, "label": "scratch", "since": middle},
            {"limit": 9, "camera": "cam-L1", "model_version": "v1", "until": middle},
        )
        for params in listings:
            from_pg = _pages(pg_client, params)
            assert from_pg == _pages(mongo_client, params), params
            rows = [row for page in from_pg for row in page]
            assert len(rows) == len({row["_id"] for row in rows}) > int(params["limit"]), params
        masks = {row["has_mask"] for page in _pages(pg_client, {"limit": 200}) for row in page}
        assert masks == {True, False}

        tiles = [client.get("/api/tiles", params={"window_min": 180}).json()["tiles"]
                 for client in (pg_client, mongo_client)]  # fmt: skip
        assert [tile["line_id"] for tile in tiles[0]] == ["L1", "L2"]
        assert [{k: t[k] for k in ("frames", "verdicts", "yield", "defect_rate")} for t in tiles[0]] == [
            {k: t[k] for k in ("frames", "verdicts", "yield", "defect_rate")} for t in tiles[1]
        ]
        shown = pg_client.get("/api/inspections", params={"label": "hole", "limit": 1}).json()["items"][0]
        path = f"/api/frames/{shown['camera_id']}/{shown['frame_number']}"
        frame = pg_client.get(path)
        assert frame.status_code == 200, frame.text
        assert frame.json() == mongo_client.get(path).json() and frame.json()["results"], frame.text

        bad: tuple[tuple[dict[str, str], str], ...] = (
            ({"verdict": "MAYBE"}, "verdict"),
            ({"limit": "lots"}, "limit"),
            ({"limit": "0"}, "limit"),
            ({"cursor": "x"}, "cursor"),
            ({"since": "yesterday"}, "since"),
        )
        for params, word in bad:
            answer = pg_client.get("/api/inspections", params=params)
            assert answer.status_code == 400 and word in answer.json()["error"], (params, answer.text)
        assert pg_client.get("/api/tiles", params={"window_min": "lots"}).status_code == 400
        assert httpx.get(f"{on_pg.url}/api/inspections").status_code == 401
    read_model.connection.close()
