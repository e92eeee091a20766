"""Helpers for the console's integration tests: a console served by uvicorn on a thread over the test's own
database and topics, a real worker on a thread, users, sign-in, SSE reading. No tests here."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo.database import Database

from lineguard.console.app import ConsoleConfig, create_app
from lineguard.console.auth import AccessStore, Role
from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames

PASSWORD = "s3cret-pass"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    url: str
    app: Any


@contextmanager
def served_console(
    database: Database[dict[str, Any]], kafka_config: dict[str, Any], topics: TopicNames, **config: Any
) -> Iterator[Served]:
    """The console app on a real HTTP port (uvicorn on a thread), stopped at the end."""
    import uvicorn

    from infra.claimcheck import GridFSClaimCheckStore

    app = create_app(
        database,
        kafka_config,
        ConsoleConfig(topics=topics, **config),
        GridFSClaimCheckStore(database.client, database.name),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(30)


def add_users(database: Database[dict[str, Any]]) -> None:
    store = AccessStore(database)
    for name, role in (("vera", Role.viewer), ("rita", Role.reviewer), ("adam", Role.admin)):
        store.add_user(name, PASSWORD, role)


def signed_in(url: str, name: str) -> tuple[httpx.Client, str]:
    """A client holding ``name``'s session cookie, and the session's CSRF token."""
    client = httpx.Client(base_url=url, timeout=30)
    answer = client.post("/api/session", json={"name": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return client, str(answer.json()["csrf"])


def read_sse(client: httpx.Client, wanted: int, timeout_s: float = 60.0) -> dict[str, list[dict[str, Any]]]:
    """Events of /api/live by kind until ``wanted`` defect events arrived."""
    events: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout_s
    kind = "message"
    with client.stream("GET", "/api/live", timeout=httpx.Timeout(30.0)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.setdefault(kind, []).append(json.loads(line[6:]))
                if len(events.get("defect", [])) >= wanted:
                    break
            assert time.monotonic() < deadline, f"only {len(events.get('defect', []))} defect events arrived"
    return events


class RunningWorker:
    """A real worker (the test model) on a thread, on the test's topics and database."""

    def __init__(self, topics: TopicNames, model_dir: Path, endpoints: Endpoints, database: str) -> None:
        from infra.settings import MongoSettings
        from workers.pipeline import Worker
        from workers.settings import WorkerSettings

        settings = WorkerSettings(
            group_id=f"console-{uuid.uuid4().hex[:8]}",
            model=model_dir,
            session_timeout_ms=6000,
            max_batch_size=8,
            max_wait_ms=20,
            decode_threads=1,
            inference_threads=1,
            commit_interval_ms=200,
        ).with_topics(topics)
        self.group_id = settings.group_id
        self.worker = Worker(settings, endpoints=endpoints, mongo=MongoSettings(database=database))
        self._thread = threading.Thread(target=self.worker.run, daemon=True)
        self._thread.start()
        assert self.worker.wait_started(120), "worker did not start"

    def stop(self) -> None:
        self.worker.stop()
        self._thread.join(60)
