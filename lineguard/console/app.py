"""The console's ASGI app: routes, sign-in checks, CSRF on writes and clean 4xx answers.

:func:`create_app` takes an open MongoDB database and a Kafka client configuration, so the tests hand it the
integration stack's and the CLI hands it the process's. Route handlers that touch MongoDB or Kafka are plain
functions: Starlette runs them in its thread pool, so a slow query never blocks the live feed's event loop.

Every error reaches the browser as ``{"error": "..."}`` with a 4xx status (HTML for pages), never as a stack
trace; an unexpected failure is logged here and answered with a bare 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pymongo.database import Database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lineguard.console import queries, review
from lineguard.console.auth import AccessStore, Principal, Role
from lineguard.console.health import BrokerHealth
from lineguard.console.images import FrameImageReader, ImageGone
from lineguard.console.live import LiveFeed
from schemas.records import KafkaCoordinates
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

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


# ------------------------------------------------------------------------------------------ handlers


async def index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers={"cache-control": "no-cache"})


async def sign_in(request: Request) -> Response:
    body = await json_body(request)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("name"), str)
        or not isinstance(body.get("password"), str)
    ):
        raise HTTPException(400, "send {name, password}")
    console: Console = request.app.state.console
    signed = await asyncio.to_thread(console.access.sign_in, body["name"], body["password"])
    if signed is None:
        log.info("console: refused sign-in for %r", body["name"][:64])  # never the password
        raise HTTPException(401, "wrong user name or password")
    session_id, who = signed
    response = JSONResponse({"name": who.name, "role": who.role.name, "csrf": who.csrf})
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(timedelta(hours=12).total_seconds()),
        httponly=True,
        samesite="strict",
        secure=console.config.secure_cookies,
    )
    return response


def me(request: Request) -> Response:
    who = require(request, Role.viewer)
    return JSONResponse({"name": who.name, "role": who.role.name, "csrf": who.csrf})


def sign_out(request: Request) -> Response:
    require(request, Role.viewer, write=True)
    console: Console = request.app.state.console
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        console.access.sign_out(session_id)
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(SESSION_COOKIE)
    return response


async def live(request: Request) -> Response:
    await asyncio.to_thread(require, request, Role.viewer)
    console: Console = request.app.state.console
    return StreamingResponse(
        console.live.stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise queries.BadQuery(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise queries.BadQuery(f"{name} must be {low}-{high}")
    return value


def _float(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise queries.BadQuery(f"{name} must be a number") from None


def tiles(request: Request) -> Response:
    require(request, Role.viewer)
    console: Console = request.app.state.console
    minutes = _int(request, "window_min", 15, 1, 24 * 60)
    found = queries.line_tiles(console.inspections, timedelta(minutes=minutes))
    health = console.health.snapshot()
    lag = health.get("lag") or {}
    for tile in found:
        tile["lag_seconds"] = (lag.get("line_seconds") or {}).get(tile["line_id"], 0.0) if lag else None
    return JSONResponse(
        {
            "window_min": minutes,
            "tiles": found,
            "lag": health.get("lag"),
            "dead_letters": health.get("dead_letters"),
            "live": {"events_seen": console.live.events_seen, "malformed": console.live.malformed},
        }
    )


def inspections(request: Request) -> Response:
    require(request, Role.viewer)
    console: Console = request.app.state.console
    params = request.query_params
    selection = queries.ListFilter(
        line=params.get("line") or None,
        camera=params.get("camera") or None,
        label=params.get("label") or None,
        verdict=params.get("verdict") or None,
        model_version=params.get("model_version") or None,
        since=queries.parse_time(params.get("since"), "since"),
        until=queries.parse_time(params.get("until"), "until"),
    )
    limit = _int(request, "limit", 50, 1, queries.PAGE_LIMIT_MAX)
    rows, cursor = queries.list_inspections(console.inspections, selection, limit, params.get("cursor"))
    return JSONResponse({"items": rows, "next": cursor})


def _frame_key(request: Request) -> tuple[str, int]:
    camera = request.path_params["camera"]
    try:
        number = int(request.path_params["number"])
    except ValueError:
        raise queries.BadQuery("the frame number must be a whole number") from None
    return camera, number


def frame(request: Request) -> Response:
    who = require(request, Role.viewer)
    console: Console = request.app.state.console
    camera, number = _frame_key(request)
    results = queries.frame_results(console.inspections, camera, number)
    if not results:
        raise HTTPException(404, f"no inspection of frame {camera}#{number}")
    mine = console.labels.find_one({"_id": review.label_id(camera, number, who.name)})
    if mine is not None:
        mine = {**mine, "labelled_at": mine["labelled_at"].isoformat()}
    return JSONResponse({"camera_id": camera, "frame_number": number, "results": results, "my_label": mine})


def frame_image(request: Request) -> Response:
    require(request, Role.viewer)
    console: Console = request.app.state.console
    camera, number = _frame_key(request)
    query: dict[str, Any] = {"camera_id": camera, "frame_number": number}
    if request.query_params.get("version"):
        query["model.version"] = request.query_params["version"]
    found = console.inspections.find_one(query, {"source": 1})
    if found is None or not isinstance(found.get("source"), dict):
        raise HTTPException(404, f"no inspection of frame {camera}#{number}")
    try:
        image = console.images.read(KafkaCoordinates.from_dict(found["source"]), camera, number)
    except ImageGone as exc:
        return JSONResponse({"error": str(exc), "gone": True}, status_code=410)
    except TimeoutError as exc:
        return JSONResponse({"error": str(exc)}, status_code=504)
    return Response(
        image.data, media_type=image.content_type, headers={"cache-control": "private, max-age=3600"}
    )


def _rules(request: Request) -> review.QueueRules:
    params = request.query_params
    shares: dict[str, float] = {}
    for item in filter(None, (params.get("share") or "").split(",")):
        line, _, share = item.rpartition(":")
        try:
            shares[line] = float(share)
        except ValueError:
            raise queries.BadQuery("share is line:fraction[,line:fraction], e.g. line-1:0.1") from None
    versions = [v for v in (params.get("versions") or "").split(",") if v]
    if versions and len(versions) != 2:
        raise queries.BadQuery("versions names two model versions: old,new")
    return review.QueueRules(
        uncertain=params.get("uncertain", "1") not in ("0", "false", ""),
        band_low=_float(request, "band_low"),
        band_high=_float(request, "band_high"),
        line_share=shares,
        disagree_versions=(versions[0], versions[1]) if versions else None,
        line=params.get("line") or None,
    )


def review_queue(request: Request) -> Response:
    who = require(request, Role.reviewer)
    console: Console = request.app.state.console
    limit = _int(request, "limit", 20, 1, 100)
    rows = review.review_queue(console.inspections, console.labels, _rules(request), who.name, limit)
    return JSONResponse({"items": rows})


async def post_review(request: Request) -> Response:
    who = await asyncio.to_thread(require, request, Role.reviewer, True)
    submitted = review.Review.from_json(await json_body(request))
    console: Console = request.app.state.console
    try:
        stored = await asyncio.to_thread(
            review.write_review, console.inspections, console.labels, submitted, who.name
        )
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    return JSONResponse(stored)


# ------------------------------------------------------------------------------------------ errors


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _wants_html(request):
        from html import escape

        body = f"<!doctype html><title>{exc.status_code}</title><p>{escape(str(exc.detail))}</p>"
        return Response(body, status_code=exc.status_code, media_type="text/html")
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _bad_query(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("console: %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return JSONResponse({"error": "internal error (logged by the console)"}, status_code=500)


def create_app(
    database: Database[dict[str, Any]],
    kafka_config: dict[str, Any],
    config: ConsoleConfig | None = None,
    claim_store: Any = None,
    start_live: bool = True,
) -> Starlette:
    """The console app over ``database`` and the topics of ``config`` (the live feed starts with the app)."""
    console = Console(database, kafka_config, config or ConsoleConfig(), claim_store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(console.ensure_indexes)
        if start_live:
            console.live.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(console.close)

    routes = [
        Route("/", index),
        Route("/api/session", sign_in, methods=["POST"]),
        Route("/api/session", me, methods=["GET"]),
        Route("/api/session", sign_out, methods=["DELETE"]),
        Route("/api/live", live),
        Route("/api/tiles", tiles),
        Route("/api/inspections", inspections),
        Route("/api/frames/{camera}/{number}", frame),
        Route("/api/frames/{camera}/{number}/image", frame_image),
        Route("/api/review/queue", review_queue),
        Route("/api/reviews", post_review, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=WEB_DIR), name="static"),
    ]
    handlers: dict[Any, Callable[..., Any]] = {
        HTTPException: _http_error,
        queries.BadQuery: _bad_query,
        Exception: _unexpected,
    }
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.console = console
    return app
