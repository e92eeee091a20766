"""The inspection console's figures: live-view delay in a real headless Chromium, list and aggregate page
times over many inspection documents (with the query plans), and the console's RSS.

Needs the stack (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI), /usr/bin/chromium and /usr/bin/chromedriver. The
console runs as its own process (``python -m lineguard.cli console``) on fresh topics and a fresh database,
both removed at the end.

* live: DefectEvents are published at --rate per second for --seconds; the page records (MutationObserver)
  when each event's card appears; delay = card shown - the producer's delivery report (the moment the result
  was written). p50/p99/max; the same clock (one machine).
* pages: --docs inspection documents (the workers' document shape, spread over --days, several lines,
  cameras, verdicts and model versions) are bulk-inserted, then each list/aggregate URL is fetched --repeat
  times over HTTP (p50/p95), and MongoDB's explain of each query is printed.

    nice -n 10 .venv/bin/python bench/bench_console.py --docs 1000000 --rate 20 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from pymongo import MongoClient

from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.console.auth import AccessStore, Role
from lineguard.console.queries import CONSOLE_INDEXES, ListFilter
from lineguard.stack.endpoints import resolve_endpoints
from schemas.records import Box, DefectEvent, DefectRegion, KafkaCoordinates, ModelInfo, Task, Verdict
from schemas.serde import AvroRecordSerializer
from schemas.topics import TopicNames

PASSWORD = "bench-password"
OBSERVER = """
window.__seen = {};
new MutationObserver((changes) => {
  const now = Date.now();
  for (const change of changes) for (const node of change.addedNodes)
    if (node.dataset && node.dataset.eventId && !(node.dataset.eventId in window.__seen))
      window.__seen[node.dataset.eventId] = now;
}).observe(document.getElementById('live-list'), {childList: true});
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def fill(collection: Any, docs: int, days: float, seed: int) -> float:
    """Insert ``docs`` worker-shaped inspection documents; returns the seconds it took."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    started = time.monotonic()
    batch: list[dict[str, Any]] = []
    span_s = days * 86400
    for index in range(docs):
        line = f"line-{index % 4 + 1}"
        camera = f"cam-{index % 12}"
        roll = rng.random()
        verdict = "DEFECT" if roll < 0.05 else "UNCERTAIN" if roll < 0.07 else "OK"
        captured = now - timedelta(seconds=span_s * (docs - index) / docs)
        score = rng.random() if verdict != "OK" else rng.random() * 0.3
        batch.append(
            {
                "_id": f"{camera}:{index}:v{1 + index % 2}",
                "camera_id": camera,
                "line_id": line,
                "station_id": "station-1",
                "frame_number": index,
                "part_id": None,
                "source": {"topic": "bench.frames", "partition": 0, "offset": index},
                "model": {"name": "bench", "version": f"v{1 + index % 2}"},
                "verdict": verdict,
                "class_scores": [{"label": "good", "score": 1 - score}, {"label": "scratch", "score": score}],
                "detections": [],
                "anomaly_score": None,
                "anomaly_mask_png": None,
                "captured_at": captured,
                "received_at": captured,
                "inferred_at": captured + timedelta(milliseconds=80),
                "batch_size": 8,
                "worker_id": "bench",
                "metadata": {"defect_score": f"{score:.4f}"},
            }
        )
        if len(batch) == 5000:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)
    return time.monotonic() - started


def start_console(port: int, database: str, prefix: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lineguard.cli",
            "console",
            "--port",
            str(port),
            "--database",
            database,
            "--topic-prefix",
            prefix,
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the console did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def browser(url: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tempfile.mkdtemp(prefix='bench-console-')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.get(url)
    driver.find_element(By.ID, "signin-name").send_keys("bench")
    driver.find_element(By.ID, "signin-password").send_keys(PASSWORD)
    driver.find_element(By.ID, "signin-submit").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "live-state").text == "live")
    driver.execute_script(OBSERVER)
    return driver


def live_delay(
    kafka_config: dict[str, Any], topic: str, driver: Any, rate: float, seconds: float
) -> dict[str, Any]:
    serializer = AvroRecordSerializer(DefectEvent)
    producer = Producer({**kafka_config, "linger.ms": 0})
    written: dict[str, float] = {}

    def delivered(err: Any, message: Any) -> None:
        if err is None:
            written[message.key().decode()] = time.time() * 1000

    count = int(rate * seconds)
    start = time.monotonic()
    for index in range(count):
        now = datetime.now(UTC)
        event = DefectEvent(
            event_id=f"bench-cam:{index}:v1",
            camera_id="bench-cam",
            line_id="line-1",
            station_id="station-1",
            frame_number=index,
            captured_at=now - timedelta(milliseconds=120),
            detected_at=now,
            model=ModelInfo(name="bench", version="v1", task=Task.CLASSIFICATION),
            verdict=Verdict.DEFECT,
            regions=(
                DefectRegion(
                    label="scratch",
                    score=0.9,
                    box=Box(label="scratch", x_min=0.1, y_min=0.1, x_max=0.4, y_max=0.4),
                    crop_jpeg=b"",
                ),
            ),
            source=KafkaCoordinates(topic="bench.frames", partition=0, offset=index),
        )
        producer.produce(topic, key=event.event_id.encode(), value=serializer(event), on_delivery=delivered)
        producer.poll(0)
        pause = start + (index + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    producer.flush(30)
    time.sleep(3.0)
    seen: dict[str, float] = driver.execute_script("return window.__seen")
    delays = [seen[key] - at for key, at in written.items() if key in seen]
    more = driver.find_element("id", "live-more").text
    return {
        "events": count,
        "shown": len(delays),
        "n_more_text": more,
        "delay_ms_p50": round(statistics.median(delays), 1) if delays else None,
        "delay_ms_p99": round(percentile(delays, 0.99), 1) if delays else None,
        "delay_ms_max": round(max(delays), 1) if delays else None,
    }


def page_times(url: str, cookies: httpx.Cookies, repeat: int) -> dict[str, Any]:
    client = httpx.Client(base_url=url, cookies=cookies, timeout=600)
    first = client.get("/api/inspections", params={"limit": 50}).json()
    deep = first["next"]
    for _ in range(4):  # 5 pages down: key pagination costs what page 1 costs
        deep = client.get("/api/inspections", params={"limit": 50, "cursor": deep}).json()["next"]
    urls = {
        "list newest 50": ("/api/inspections", {"limit": 50}),
        "list page 6 (cursor)": ("/api/inspections", {"limit": 50, "cursor": deep}),
        "list line-2": ("/api/inspections", {"limit": 50, "line": "line-2"}),
        "list cam-3": ("/api/inspections", {"limit": 50, "camera": "cam-3"}),
        "list DEFECT": ("/api/inspections", {"limit": 50, "verdict": "DEFECT"}),
        "list version v2": ("/api/inspections", {"limit": 50, "model_version": "v2"}),
        "frame cam-5 #10001": ("/api/frames/cam-5/10001", {}),
        "tiles 15 min": ("/api/tiles", {"window_min": 15}),
        "tiles 60 min": ("/api/tiles", {"window_min": 60}),
    }
    figures: dict[str, Any] = {}
    for name, (path, params) in urls.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            answer = client.get(path, params=params)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code in (200, 404), (name, answer.text)
        figures[name] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
        }
    return figures


def plans(collection: Any) -> dict[str, Any]:
    """What the server says about the list queries (FerretDB answers explain with its own plan format)."""
    out: dict[str, Any] = {}
    since = datetime.now(UTC) - timedelta(minutes=15)
    queries = {
        "newest": ({}, [("captured_at", -1), ("_id", -1)]),
        "line": (ListFilter(line="line-2").query(), [("captured_at", -1), ("_id", -1)]),
        "tiles window": ({"captured_at": {"$gte": since}}, None),
    }
    for name, (query, sort) in queries.items():
        command: dict[str, Any] = {"find": collection.name, "filter": query, "limit": 51}
        if sort:
            command["sort"] = dict(sort)
        try:
            explained = collection.database.command("explain", command)
        except Exception as exc:  # a server without explain for this shape: say so
            out[name] = f"explain failed: {exc}"
            continue
        planner = explained.get("queryPlanner", explained)
        out[name] = json.loads(json.dumps(planner, default=str))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pages", action="store_true", help="only the live delay and RSS")
    args = parser.parse_args()
    # SIGTERM (a `timeout`) unwinds like Ctrl-C, so the topics, the database and the console are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    endpoints = resolve_endpoints()
    kafka_config = endpoints.kafka_config()
    prefix = f"bench-console-{uuid.uuid4().hex[:8]}"
    topics = TopicNames.with_prefix(prefix)
    names = [topics.frames, topics.results, topics.defect_events, topics.dead_letters]
    ensure_topics(kafka_config, names, partitions=3)
    database = f"bench_console_{uuid.uuid4().hex[:8]}"
    client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri, tz_aware=True)
    collection = client[database]["inspections"]
    AccessStore(client[database]).add_user("bench", PASSWORD, Role.viewer)
    report: dict[str, Any] = {"docs": args.docs, "server": client.server_info().get("version")}
    console = None
    driver = None
    try:
        console = start_console(args.port, database, prefix)  # creates the indexes on the empty collection
        url = f"http://127.0.0.1:{args.port}"
        report["rss_mb_idle"] = round(rss_mb(console.pid), 1)
        driver = browser(url + "/")
        report["live"] = live_delay(kafka_config, topics.defect_events, driver, args.rate, args.seconds)
        report["rss_mb_after_live"] = round(rss_mb(console.pid), 1)
        print(
            json.dumps({"live": report["live"], "rss_mb_after_live": report["rss_mb_after_live"]}), flush=True
        )
        if args.no_pages:
            return
        report["insert_s"] = round(fill(collection, args.docs, args.days, args.seed), 1)
        report["indexes"] = sorted(collection.index_information())
        report["console_indexes"] = [name for name, _ in CONSOLE_INDEXES]
        signed = httpx.post(f"{url}/api/session", json={"name": "bench", "password": PASSWORD}, timeout=30)
        report["pages"] = page_times(url, signed.cookies, args.repeat)
        report["rss_mb_after_pages"] = round(rss_mb(console.pid), 1)
        report["plans"] = plans(collection)
    finally:
        print(json.dumps(report, indent=2, default=str), flush=True)
        if driver is not None:
            driver.quit()
        if console is not None:
            console.send_signal(signal.SIGINT)
            console.wait(30)
        client.drop_database(database)
        client.close()
        delete_topics(kafka_config, names)


if __name__ == "__main__":
    os.environ.setdefault("LINEGUARD_LOG_LEVEL", "WARNING")
    main()
