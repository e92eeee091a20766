"""``lineguard parts``: run the per-part join until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


def parts_command(
    rules: Annotated[Path, typer.Option("--rules", help="per-line part rules (YAML/JSON)")],
    topic_prefix: Annotated[
        str | None, typer.Option("--topic-prefix", help="use <prefix>.results, <prefix>.part-decisions, ...")
    ] = None,
    group: Annotated[str, typer.Option("--group", help="consumer group id")] = "lineguard-parts",
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="for topics it creates")] = 3,
) -> None:
    """Join the verdicts of every view of a part into one decision (part-decisions topic, MongoDB `parts`)."""
    from pymongo import MongoClient

    from lineguard.settings import KafkaSettings, MongoSettings
    from lineguard.stack.endpoints import resolve_endpoints
    from parts.rules import load_part_rules
    from parts.service import PartService, PartTopics

    part_rules = load_part_rules(rules)  # a bad file is a ConfigurationError: one line, exit 2
    endpoints = resolve_endpoints()
    kafka_config = KafkaSettings().client_config(endpoints.kafka_bootstrap)
    mongo: MongoClient[dict[str, object]] = MongoClient(endpoints.mongodb_uri)
    topics = PartTopics.with_prefix(topic_prefix) if topic_prefix else PartTopics()
    service = PartService(
        kafka_config, mongo[MongoSettings().database], part_rules, topics, group, partitions
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        service.run(stop)
    finally:
        mongo.close()


def register(app: typer.Typer) -> None:
    app.command("parts")(parts_command)
