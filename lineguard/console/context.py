"""What every console handler shares: the configuration, the stores and Kafka readers (:class:`Console`),
the sign-in and CSRF checks and the bounded JSON body."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo.database import Database
from starlette.exceptions import HTTPException
from starlette.requests import Request

from lineguard.console import queries, review
from lineguard.console.auth import AccessStore, Principal, Role
from lineguard.console.health import BrokerHealth
from lineguard.console.images import FrameImageReader
from lineguard.console.live import LiveFeed
from schemas.topics import TopicNames

WEB_DIR = Path(__file__).parent / "web"
SESSION_COOKIE = "lineguard_session"
CSRF_HEADER = "x-csrf-token"
MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    topics: TopicNames = field(default_factory=TopicNames)
    collection: str = "inspections"
    labels_collection: str = review.LABELS
    worker_group: str = "lineguard-workers"
    secure_cookies: bool = False  # set behind TLS: the cookie then never travels in clear
    live_backlog: int = 20
    registry: Any = None  # a schema registry client for Confluent-framed records, else None
    read_model: Any = None  # the list page's and tiles' store (queries_pg.ReadModel); None: MongoDB


class Console:
    """What the handlers share: the stores, the Kafka readers, the live feed."""

    def __init__(
        self,
        database: Database[dict[str, Any]],
        kafka_config: dict[str, Any],
        config: ConsoleConfig,
        claim_store: Any = None,
    ) -> None:
        self.config = config
        self.inspections = database[config.collection]
        self.read_model = config.read_model or queries.MongoReadModel(self.inspections)
        self.labels = database[config.labels_collection]
        self.access = AccessStore(database)
        self.live = LiveFeed(kafka_config, config.topics.defect_events, config.live_backlog, config.registry)
        self.images = FrameImageReader(kafka_config, claim_store, config.registry)
        self.health = BrokerHealth(
            kafka_config, config.worker_group, config.topics.frames, config.topics.dead_letters
        )

    def ensure_indexes(self) -> None:
        self.access.ensure_indexes()
        queries.ensure_indexes(self.inspections)
        review.ensure_indexes(self.labels)

    def close(self) -> None:
        self.live.stop()
        self.images.close()
        self.health.close()


# ------------------------------------------------------------------------------------------ access


def principal(request: Request) -> Principal | None:
    console: Console = request.app.state.console
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return console.access.token(header[7:].strip())
    session_id = request.cookies.get(SESSION_COOKIE)
    return console.access.session(session_id) if session_id else None


def require(request: Request, role: Role, write: bool = False) -> Principal:
    """The caller, when signed in with at least ``role``; writes also need the session's CSRF token."""
    who = principal(request)
    if who is None:
        raise HTTPException(401, "sign in first")
    if not who.may(role):
        raise HTTPException(403, f"this needs the {role.name} role (you are {who.role.name})")
    if write:
        sent = request.headers.get(CSRF_HEADER, "")
        if who.csrf is None or not hmac.compare_digest(sent.encode(), who.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token")
    return who


async def json_body(request: Request) -> Any:
    # A JSON content type is a CSRF defence too: a cross-site form cannot send it without a CORS preflight.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "send the body as application/json")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, "the body is too large")
    import json

    try:
        return json.loads(raw)
    except ValueError:
        raise HTTPException(400, "the body is not valid JSON") from None
