"""``lineguard claimcheck prune``: delete claim-checked images no retained frame record can still reference.

The retention comes from the broker (each frames topic's ``retention.ms`` and its oldest retained record),
plus ``--margin-s`` (see :mod:`infra.claimcheck_retention`). ``--every-s S`` keeps the command running and
prunes every S seconds (a sidecar or a systemd service next to the workers): a pass that cannot reach
Kafka or MongoDB is logged and tried again next time; SIGTERM/SIGINT end it after the current pass. Exit
codes: 0 done, 1 Kafka or MongoDB unreachable (a single pass), 2 bad input.

Clients are imported inside the command: ``lineguard claimcheck --help`` loads Typer and little else."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from schemas.topics import FRAMES_TOPIC

_ENV = "LINEGUARD_CLAIMCHECK_"
log = logging.getLogger(__name__)
app = typer.Typer(
    help="Keep the claim-check store (GridFS) bounded by the frames topic's retention.", no_args_is_help=True
)


@app.command("prune")
def prune_command(
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", envvar=f"{_ENV}TOPIC", help="frames topic (repeat for several)"),
    ] = None,
    bucket: Annotated[str, typer.Option("--bucket", envvar=f"{_ENV}BUCKET", help="GridFS bucket")] = "frames",
    margin_s: Annotated[
        float,
        typer.Option(
            "--margin-s",
            envvar=f"{_ENV}MARGIN_S",
            min=0.0,
            help="seconds kept beyond the retention (clock skew, spooled frames sent late)",
        ),
    ] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, delete nothing")] = False,
    every_s: Annotated[
        float,
        typer.Option("--every-s", envvar=f"{_ENV}EVERY_S", min=0.0, help="prune every S seconds; 0 = once"),
    ] = 0.0,
) -> None:
    """Delete claim-checked images older than the frames topic's retention plus a margin.

    Kafka: KAFKA_BOOTSTRAP_SERVERS; MongoDB: MONGODB_URI and LINEGUARD_MONGODB_DATABASE; else the local stack.
    """
    import pymongo.errors
    from pymongo import MongoClient

    from infra.claimcheck_retention import prune_bucket, prune_cutoff, read_topic_retention
    from infra.endpoints import resolve_endpoints
    from infra.settings import KafkaSettings, MongoSettings
    from schemas.errors import ServiceUnavailableError

    kafka, mongo = KafkaSettings(), MongoSettings()
    bootstrap = kafka.bootstrap_servers
    uri = mongo.uri.get_secret_value() if mongo.uri is not None else None
    if not bootstrap or not uri:
        endpoints = resolve_endpoints()
        bootstrap, uri = bootstrap or endpoints.kafka_bootstrap, uri or endpoints.mongodb_uri
    kafka_config = kafka.client_config(bootstrap)
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    database = client[mongo.database]
    topics = topic or [FRAMES_TOPIC]
    stop = threading.Event()
    if every_s:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())

    def progress(report: Any) -> None:
        typer.echo(f"  ... {report.scanned} scanned, {report.deleted} to delete", err=True)

    try:
        while True:
            try:
                retention = read_topic_retention(kafka_config, topics)
                cutoff = prune_cutoff(datetime.now(UTC), retention, margin_s)
                report = prune_bucket(database, bucket, cutoff, dry_run=dry_run, on_progress=progress)
                typer.echo(f"claimcheck gridfs://{mongo.database}/{bucket}: {report.summary()}")
            except (ServiceUnavailableError, pymongo.errors.PyMongoError) as exc:
                if not every_s:
                    raise ServiceUnavailableError(f"claim-check prune failed: {exc}") from exc
                log.warning("claim-check prune pass failed, retrying in %.0f s: %s", every_s, exc)
            if not every_s or stop.wait(every_s):
                break
    finally:
        client.close()
