"""`lineguard demo --console` against the real Kafka and MongoDB: the console it starts serves the demo's
topics and database (its defects are there, signed in as the printed demo user), it keeps serving after the
summary, and SIGTERM stops both."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.database import Database

from infra.kafka_topics import delete_topics
from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from tests.integration.test_workers_support import FRAME_SIZE

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_summary(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The JSON summary the demo prints before it goes on serving the console (it does not exit)."""
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.rstrip() == "}":
            return dict(json.loads("".join(lines)))
    raise AssertionError(f"the demo ended without a summary: {''.join(lines)}")


def test_the_demo_console_shows_the_demos_defects_and_stops_with_it(
    endpoints: Endpoints,
    kafka_config: dict[str, Any],
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    prefix = f"test.demo-console.{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
           "MONGODB_URI": endpoints.mongodb_uri, "LINEGUARD_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    command = [
        sys.executable, "-m", "lineguard.cli", "demo", "--frames", "30", "--fps", "20",
        "--defect-rate", "0.5", "--size", f"{FRAME_SIZE}x{FRAME_SIZE}", "--model", str(model_dir),
        "--topic-prefix", prefix, "--database", mongo_db.name, "--max-batch-size", "8", "--json",
        "--console", "--console-port", str(port),
    ]  # fmt: skip
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        summary = _read_summary(demo)
        where = summary["where"]["console"]
        assert where["url"] == f"http://127.0.0.1:{port}/" and where["running"] is True
        assert summary["results"] == 30 and summary["defects"] > 0
        with httpx.Client(base_url=where["url"], timeout=30) as client:
            answer = client.post("/api/session", json={"name": where["user"], "password": where["password"]})
            assert answer.status_code == 200, answer.text
            listed = client.get("/api/inspections", params={"verdict": "DEFECT", "limit": 200})
            assert len(listed.json()["items"]) == summary["defects"]  # the demo's defects, in its database
            assert demo.poll() is None  # the console is still served after the summary
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=60)
        assert demo.returncode == 0, err
        assert "Ctrl-C stops it" in err and where["password"] in err
        with pytest.raises(httpx.ConnectError):
            httpx.get(where["url"], timeout=5)  # the console went with the demo
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        names = TopicNames.with_prefix(prefix)
        delete_topics(kafka_config, [names.frames, names.results, names.defect_events, names.dead_letters])
