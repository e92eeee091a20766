"""The console's HTTP API against the real stack: access rules and clean errors; then frames through a real
worker, the live feed, the list, a frame's image (and a gone one), reviews into ``labels`` and
``lineguard dataset export`` picking them up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.database import Database

from lineguard.console.auth import AccessStore
from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from tests.integration.test_console_support import (
    PASSWORD,
    RunningWorker,
    add_users,
    read_sse,
    served_console,
    signed_in,
)
from tests.integration.test_workers_support import make_frames, produce_frames, wait_for

pytestmark = pytest.mark.integration


def test_access_rules_and_bad_requests_get_clean_4xx(
    mongo_db: Database[dict[str, Any]], kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    add_users(mongo_db)
    token = AccessStore(mongo_db).add_token("hall-screen")
    with served_console(mongo_db, kafka_config, topics) as served:
        anonymous = httpx.Client(base_url=served.url, timeout=30)
        assert anonymous.get("/").status_code == 200  # the page itself: it shows the sign-in form
        refused = anonymous.get("/api/inspections")
        assert (refused.status_code, refused.json()) == (401, {"error": "sign in first"})
        wrong = anonymous.post("/api/session", json={"name": "vera", "password": "nope-nope"})
        assert wrong.status_code == 401 and "password" in wrong.json()["error"]
        unknown = anonymous.post("/api/session", json={"name": "nobody", "password": PASSWORD})
        assert unknown.json() == wrong.json()  # no user-name oracle
        assert (
            anonymous.post(
                "/api/session", content=b"name=vera", headers={"content-type": "text/plain"}
            ).status_code
            == 415
        )
        garbage = anonymous.post(
            "/api/session", content=b"{oops", headers={"content-type": "application/json"}
        )
        assert (garbage.status_code, garbage.json()["error"]) == (400, "the body is not valid JSON")
        page = anonymous.get("/no/such/page", headers={"accept": "text/html"})
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "Traceback" not in page.text

        viewer, viewer_csrf = signed_in(served.url, "vera")
        session = viewer.get("/api/session").json()
        assert (session["name"], session["role"], session["csrf"]) == ("vera", "viewer", viewer_csrf)
        cookie = anonymous.post("/api/session", json={"name": "vera", "password": PASSWORD}).headers[
            "set-cookie"
        ]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert viewer.get("/api/review/queue").status_code == 403  # viewers do not review
        bad = viewer.get("/api/inspections", params={"verdict": "MAYBE"})
        assert bad.status_code == 400 and "verdict" in bad.json()["error"]
        assert viewer.get("/api/inspections", params={"limit": "lots"}).json() == {
            "error": "limit must be a whole number"
        }
        assert viewer.get("/api/inspections", params={"cursor": "x"}).status_code == 400
        assert viewer.get("/api/inspections", params={"since": "yesterday"}).status_code == 400
        assert viewer.get("/api/frames/cam-a/notanumber").status_code == 400
        assert viewer.get("/api/frames/cam-a/1").status_code == 404

        reviewer, csrf = signed_in(served.url, "rita")
        review = {
            "camera_id": "cam-a",
            "frame_number": 1,
            "model_version": "t1",
            "label": "good",
            "action": "good",
        }
        no_csrf = reviewer.post("/api/reviews", json=review)
        assert (no_csrf.status_code, no_csrf.json()["error"]) == (403, "missing or wrong CSRF token")
        assert (
            reviewer.post("/api/reviews", json=review, headers={"x-csrf-token": viewer_csrf}).status_code
            == 403
        )
        missing = reviewer.post("/api/reviews", json=review, headers={"x-csrf-token": csrf})
        assert missing.status_code == 404  # no such result: nothing written
        assert mongo_db["labels"].count_documents({}) == 0
        malformed = reviewer.post("/api/reviews", json={"camera_id": "c"}, headers={"x-csrf-token": csrf})
        assert malformed.status_code == 400 and "lacks" in malformed.json()["error"]

        screen = httpx.Client(base_url=served.url, timeout=30, headers={"authorization": f"Bearer {token}"})
        assert screen.get("/api/inspections").json() == {"items": [], "next": None}
        assert screen.post("/api/reviews", json=review).status_code == 403  # tokens are read-only
        forged = httpx.Client(base_url=served.url, headers={"authorization": "Bearer lgt_forged"})
        assert forged.get("/api/inspections").status_code == 401

        assert reviewer.delete("/api/session", headers={"x-csrf-token": csrf}).status_code == 200
        assert reviewer.get("/api/session").status_code == 401
    stored = mongo_db["console_users"].find_one({"_id": "vera"})
    assert stored is not None and PASSWORD not in str(stored)


def test_worker_results_reach_the_live_feed_the_viewer_and_reviews_reach_the_export(
    mongo_db: Database[dict[str, Any]],
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    from vision.export_dataset import ExportSources, run_export

    add_users(mongo_db)
    frames = make_frames(30, seed=5)
    with served_console(mongo_db, kafka_config, topics) as served:
        viewer, _ = signed_in(served.url, "vera")
        worker = RunningWorker(topics, model_dir, endpoints, mongo_db.name)
        try:
            produce_frames(kafka_config, topics.frames, frames)
            collection = mongo_db["inspections"]
            wait_for(lambda: collection.count_documents({}) >= len(frames), 60, "the worker's documents")
        finally:
            worker.stop()
        flagged = collection.count_documents({"verdict": {"$in": ["DEFECT", "UNCERTAIN"]}})
        assert flagged > 0, "the seeded frames hold defects"
        live = read_sse(viewer, wanted=flagged)
        defects = live["defect"]
        assert live["hello"][0]["topic"] == topics.defect_events
        assert {d["event_id"] for d in defects} == {
            d["_id"] for d in collection.find({"verdict": {"$in": ["DEFECT", "UNCERTAIN"]}}, {"_id": 1})
        }
        assert all(d["model"]["version"] == "t1" and d["latency_ms"] >= 0 for d in defects)
        assert all(r["crop"] for d in defects for r in d["regions"])

        # The list, paged by key: every document exactly once, newest first.
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = viewer.get(
                "/api/inspections", params={"limit": 7, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200
            seen.extend(page.json()["items"])
            cursor = page.json()["next"]
            if cursor is None:
                break
        assert len(seen) == len(frames) and len({s["_id"] for s in seen}) == len(frames)
        assert [s["captured_at"] for s in seen] == sorted((s["captured_at"] for s in seen), reverse=True)
        only_a = viewer.get("/api/inspections", params={"camera": "cam-a", "limit": 100}).json()["items"]
        assert {s["camera_id"] for s in only_a} == {"cam-a"} and len(only_a) == 10

        tiles = viewer.get("/api/tiles", params={"window_min": 60}).json()
        assert tiles["tiles"][0]["line_id"] == "line-1" and tiles["tiles"][0]["frames"] == len(frames)
        assert tiles["dead_letters"] == 0

        # A frame's image is the frame's bytes, read from the frames topic at the result's coordinates.
        frame = frames[4]
        image = viewer.get(f"/api/frames/{frame.camera_id}/{frame.frame_number}/image")
        assert (image.status_code, image.headers["content-type"]) == (200, "image/jpeg")
        assert image.content == frame.image
        details = viewer.get(f"/api/frames/{frame.camera_id}/{frame.frame_number}").json()
        assert details["results"][0]["source"]["topic"] == topics.frames
        original = collection.find_one({"_id": details["results"][0]["_id"]})
        assert original is not None
        gone_doc = dict(original)
        gone_doc.update(_id="cam-z:1:t1", camera_id="cam-z", frame_number=1)
        gone_doc["source"] = {**gone_doc["source"], "offset": 10**9}
        collection.insert_one(gone_doc)
        gone = viewer.get("/api/frames/cam-z/1/image")
        assert gone.status_code == 410 and gone.json()["gone"] is True and "gone" in gone.json()["error"]
        collection.delete_one({"_id": "cam-z:1:t1"})

        # Reviews: the queue (a score band over everything), two reviews, the second one twice.
        reviewer, csrf = signed_in(served.url, "rita")
        queue = reviewer.get("/api/review/queue", params={"band_low": 0, "band_high": 1, "limit": 100}).json()
        assert len(queue["items"]) == len(frames)
        first, second = queue["items"][0], queue["items"][1]
        reviews = [
            {
                **_key(first),
                "label": "scratch",
                "action": "relabel",
                "boxes": [{"label": "scratch", "x_min": 0.1, "y_min": 0.1, "x_max": 0.4, "y_max": 0.5}],
            },
            {**_key(second), "label": "good", "action": "good"},
            {**_key(second), "label": "good", "action": "good"},
        ]
        for body in reviews:
            answer = reviewer.post("/api/reviews", json=body, headers={"x-csrf-token": csrf})
            assert answer.status_code == 200, answer.text
        labels = list(mongo_db["labels"].find({}).sort("_id"))
        assert len(labels) == 2  # idempotent per frame and reviewer
        assert {(d["label"], d["labelled_by"], d["model_version"]) for d in labels} == {
            ("scratch", "rita", "t1"),
            ("good", "rita", "t1"),
        }
        after = reviewer.get("/api/review/queue", params={"band_low": 0, "band_high": 1, "limit": 100}).json()
        assert len(after["items"]) == len(frames) - 2  # reviewed frames leave the reviewer's queue

    sources = ExportSources(
        kafka_config=kafka_config,
        frames_topic=topics.frames,
        results_topic=topics.results,
        mongodb_uri=endpoints.mongodb_uri,
        database=mongo_db.name,
    )
    out = tmp_path / "train"
    summary = run_export(sources, out, "mongodb", None)
    assert summary.sources["correction"] == 2
    assert (out / "scratch" / f"{first['camera_id']}_{first['frame_number']:010d}.jpg").is_file()
    assert (out / "good" / f"{second['camera_id']}_{second['frame_number']:010d}.jpg").is_file()


def _key(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "camera_id": item["camera_id"],
        "frame_number": item["frame_number"],
        "model_version": item["model"]["version"],
    }
