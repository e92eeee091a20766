"""Fixtures for tests against the real Kafka and MongoDB.

The services come from ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` when set; otherwise the session brings
the local stack up once with the project's own launcher and takes it down at the end, but only what this
session started. If no stack can be had the fixture errors: integration tests never skip silently, because
a CI run that skipped them would prove nothing.

Each test gets its own topics and its own database, so tests never see each other's data.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV, Endpoints, resolve_endpoints
from lineguard.stack.state import KAFKA, MONGODB
from schemas.topics import TopicNames

TEST_TOPIC_PARTITIONS = 3


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    """Kafka and MongoDB addresses for the whole session (environment variables, else the local stack)."""
    needed = [name for name, var in ((KAFKA, KAFKA_ENV), (MONGODB, MONGODB_ENV)) if not os.environ.get(var)]
    if not needed:
        yield resolve_endpoints()
        return

    from lineguard.stack.launcher import LocalStack

    stack = LocalStack()
    started = stack.up(services=needed).started  # raises (the tests error, loudly) when it cannot start
    try:
        yield resolve_endpoints(state_dir=stack.state_dir)
    finally:
        if started:
            stack.down(services=started)


@pytest.fixture
def kafka_config(endpoints: Endpoints) -> dict[str, Any]:
    """A fresh confluent-kafka client configuration (tests may add keys to it)."""
    return endpoints.kafka_config()


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()[:limit] or "test"


@pytest.fixture
def topics(kafka_config: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[TopicNames]:
    """The four lineguard topics under a prefix unique to this test, created before and deleted after."""
    prefix = f"test.{_slug(request.node.name, 40)}.{uuid.uuid4().hex[:8]}"
    names = TopicNames.with_prefix(prefix)
    all_names = [names.frames, names.results, names.defect_events, names.dead_letters]
    ensure_topics(kafka_config, all_names, partitions=TEST_TOPIC_PARTITIONS)
    try:
        yield names
    finally:
        delete_topics(kafka_config, all_names)


@pytest.fixture(scope="session")
def mongo_client(endpoints: Endpoints) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=10_000)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_db(mongo_client: MongoClient[dict[str, Any]]) -> Iterator[Database[dict[str, Any]]]:
    """A database of its own for this test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    try:
        yield mongo_client[name]
    finally:
        mongo_client.drop_database(name)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workers' test model (a real small Keras classifier exported to ONNX), trained once a session."""
    from tests.integration.test_workers_support import cached_test_model

    return cached_test_model(tmp_path_factory.getbasetemp())


@pytest.fixture
def worker_subprocess_env(
    endpoints: Endpoints, topics: TopicNames, mongo_db: Database[dict[str, Any]], model_dir: Path
) -> dict[str, str]:
    """Environment for ``python -m workers`` on this test's topics and database, in a group of its own
    (``LINEGUARD_WORKER_GROUP_ID``) and serving the test model."""
    from tests.integration.test_workers_support import worker_env

    return worker_env(endpoints, mongo_db.name, topics, f"group-{uuid.uuid4().hex[:8]}", model_dir)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's own PostgreSQL from the machine's binaries (as `lineguard stack up --with postgres`)."""
    from lineguard.stack.postgres import local_server

    server = local_server(tmp_path_factory.mktemp("postgres-state"))
    server.start()
    try:
        yield server
    finally:
        server.purge()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's own Redis from the machine's binary (as `lineguard stack up --with redis`)."""
    from lineguard.stack.redis_server import local_server

    server = local_server(tmp_path_factory.mktemp("redis-state"))
    server.start()
    try:
        yield server
    finally:
        server.purge()


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    """``REDIS_URL`` when set, else the session's server. Tests keep apart by key prefix (uuid)."""
    return os.environ.get("REDIS_URL") or str(redis_server.uri)


def _database_on(base: str) -> Iterator[str]:
    """A fresh database on the server of ``base``, dropped afterwards."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_uri(postgres_server: Any) -> Iterator[str]:
    """A database of its own for this test on ``POSTGRES_URI`` when set, else on the session's server."""
    yield from _database_on(os.environ.get("POSTGRES_URI") or postgres_server.uri)


@pytest.fixture
def own_postgres_uri(postgres_server: Any) -> Iterator[str]:
    """A database on the session's own server even when ``POSTGRES_URI`` is set: for tests that stop the
    server (an outage must hit the server the code under test talks to)."""
    yield from _database_on(postgres_server.uri)
