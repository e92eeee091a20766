"""The console's route handlers: the page, the session, the live feed, tiles, inspections, frames and
their images, the review queue and reviews.

Handlers that touch MongoDB or Kafka are plain functions: Starlette runs them in its thread pool, so a slow
query never blocks the live feed's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from lineguard.console import queries, review
from lineguard.console.auth import Role
from lineguard.console.context import SESSION_COOKIE, WEB_DIR, Console, json_body, require
from lineguard.console.images import ImageGone
from schemas.records import KafkaCoordinates

log = logging.getLogger(__name__)


async def index(request: Request) -> Response:
    # The page is 4 KB: it is answered whole from one read, in a single body message. Starlette's
    # FileResponse streams it from a worker thread while watching for a disconnect, and once in CI a
    # first request got its headers and then a closed connection with no body.
    page = await asyncio.to_thread((WEB_DIR / "index.html").read_bytes)
    return Response(page, media_type="text/html", headers={"cache-control": "no-cache"})


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
    found = console.read_model.line_tiles(timedelta(minutes=minutes))
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
    rows, cursor = console.read_model.list_inspections(selection, limit, params.get("cursor"))
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
