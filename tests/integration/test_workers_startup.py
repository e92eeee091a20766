"""A worker started while MongoDB is away waits for it (bounded), then works; a stop while it waits is clean.

MongoDB "comes back" as a TCP relay to the real server that starts listening a few seconds after the worker:
until then the worker's address refuses connections, like a database that is restarting.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.records import InspectionResult
from schemas.topics import TopicNames
from tests.integration.test_workers_support import (
    decoder,
    make_frames,
    produce_frames,
    read_topic,
    start_worker,
    terminate,
    wait_for,
)

pytestmark = pytest.mark.integration

FRAMES = 20
OUTAGE_S = 6.0


class DelayedRelay:
    """Relays TCP connections from a local port to ``target``; refuses them until :meth:`open`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        with socket.socket() as probe:  # a free port, not listened on until open()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: socket.socket | None = None
        self._closed = threading.Event()

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


def _host_port(uri: str) -> tuple[str, int]:
    """The server a relay must reach; any form pymongo accepts (port optional, IPv6, options)."""
    from pymongo.uri_parser import parse_uri

    nodes = parse_uri(uri)["nodelist"]
    # A relay stands for one server; a replica-set URI would let the driver go around it.
    assert len(nodes) == 1, f"this test relays one MongoDB server; MONGODB_URI names {len(nodes)}"
    host, port = nodes[0]
    return host, port


def _through(uri: str, port: int) -> str:
    """``uri`` with its one host replaced by the relay (credentials, database and options kept)."""
    scheme, rest = uri.split("://", 1)
    assert scheme == "mongodb", f"this test relays a mongodb:// URI, got {scheme}://"
    authority, slash, tail = rest.partition("/")
    credentials, at, _host = authority.rpartition("@")
    return f"mongodb://{credentials}{at}127.0.0.1:{port}{slash}{tail}"


@pytest.fixture
def relay(endpoints: Endpoints) -> Any:
    relay = DelayedRelay(_host_port(endpoints.mongodb_uri))
    yield relay
    relay.close()


@pytest.fixture
def relayed_env(
    relay: DelayedRelay, endpoints: Endpoints, worker_subprocess_env: dict[str, str]
) -> dict[str, str]:
    """A worker's environment with MongoDB behind the relay (closed until the test opens it)."""
    env = worker_subprocess_env
    env["MONGODB_URI"] = _through(endpoints.mongodb_uri, relay.port)
    env["LINEGUARD_WORKER_STARTUP_TIMEOUT_S"] = "60"
    return env


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_a_worker_started_during_a_mongodb_outage_waits_and_then_inspects_everything(
    exactly_once: bool,
    relay: DelayedRelay,
    relayed_env: dict[str, str],
    kafka_config: dict[str, Any],
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    tmp_path: Path,
) -> None:
    frames = make_frames(FRAMES)
    produce_frames(kafka_config, topics.frames, frames)
    log = tmp_path / "worker.log"
    process = start_worker(relayed_env, *(["--exactly-once"] if exactly_once else []), log_path=log)
    try:
        wait_for(lambda: "trying again" in log.read_text(), 60, "the worker to report it waits for MongoDB")
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(OUTAGE_S)
        assert process.poll() is None, log.read_text()[-3000:]  # still waiting, not exited
        relay.open()
        wait_for(
            lambda: mongo_db["inspections"].count_documents({}) == FRAMES,
            90,
            f"{FRAMES} documents once MongoDB answers",
        )
        results = read_topic(kafka_config, topics.results, decoder(InspectionResult), FRAMES)
        assert sorted(r.identity for r in results) == sorted((f.camera_id, f.frame_number) for f in frames)
        assert terminate(process) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()


def test_a_stop_while_waiting_for_mongodb_is_a_clean_exit(
    relayed_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    process = start_worker(relayed_env, log_path=log)  # the relay is never opened
    try:
        wait_for(lambda: "trying again" in log.read_text(), 60, "the worker to report it waits for MongoDB")
        waits_before = log.read_text().count("trying again")
        assert terminate(process, timeout_s=30) == 0, log.read_text()[-3000:]
        text = log.read_text()
        # The stop ended the wait: at most the attempt already under way finished, none was started after
        # it, and the worker did not run into its 60 s startup timeout.
        assert text.count("trying again") <= waits_before + 1, text[-3000:]
        assert "stopped before it started" in text
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop while waiting:\n{log.read_text()[-3000:]}")
    finally:
        if process.poll() is None:
            process.kill()
