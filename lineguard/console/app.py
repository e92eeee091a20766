"""The console's ASGI app: the routes, and clean 4xx answers for every error.

:func:`create_app` takes an open MongoDB database and a Kafka client configuration, so the tests hand it the
integration stack's and the CLI hands it the process's. The handlers live in
:mod:`lineguard.console.handlers`; what they share (stores, sign-in and CSRF checks) in
:mod:`lineguard.console.context`.

Every error reaches the browser as ``{"error": "..."}`` with a 4xx status (HTML for pages), never as a stack
trace; an unexpected failure is logged here and answered with a bare 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pymongo.database import Database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lineguard.console import queries
from lineguard.console.context import WEB_DIR, Console, ConsoleConfig
from lineguard.console.handlers import (
    frame,
    frame_image,
    index,
    inspections,
    live,
    me,
    post_review,
    review_queue,
    sign_in,
    sign_out,
    tiles,
)

__all__ = ["Console", "ConsoleConfig", "create_app"]

log = logging.getLogger(__name__)


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
