"""``lineguard parts`` (the per-part join) and ``lineguard plc`` (the OPC UA bridge), until SIGTERM.

Settings, clients and the OPC UA client are imported inside the commands: ``lineguard parts --help`` loads
Typer and little else.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


def parts_command(
    rules: Annotated[
        Path, typer.Option("--rules", envvar="LINEGUARD_PARTS_RULES", help="per-line part rules (YAML/JSON)")
    ],
    topic_prefix: Annotated[
        str | None,
        typer.Option(
            "--topic-prefix",
            envvar="LINEGUARD_PARTS_TOPIC_PREFIX",
            help="use <prefix>.results, <prefix>.part-decisions, ...",
        ),
    ] = None,
    group: Annotated[
        str, typer.Option("--group", envvar="LINEGUARD_PARTS_GROUP", help="consumer group id")
    ] = "lineguard-parts",
    partitions: Annotated[
        int,
        typer.Option(
            "--partitions", min=1, envvar="LINEGUARD_PARTS_PARTITIONS", help="for topics it creates"
        ),
    ] = 3,
) -> None:
    """Join the verdicts of every view of a part into one decision (part-decisions topic, MongoDB `parts`)."""
    from pymongo import MongoClient

    from infra.endpoints import resolve_endpoints
    from infra.settings import KafkaSettings, MongoSettings
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


def plc_command(
    config: Annotated[
        Path,
        typer.Option(
            "--config", envvar="LINEGUARD_PLC_CONFIG", help="PLC bridge config (YAML/JSON): endpoint, nodes"
        ),
    ],
    topic: Annotated[
        str, typer.Option("--topic", envvar="LINEGUARD_PLC_TOPIC", help="part-decisions topic")
    ] = "lineguard.part-decisions",
    group: Annotated[
        str, typer.Option("--group", envvar="LINEGUARD_PLC_GROUP", help="consumer group id")
    ] = "lineguard-plc",
) -> None:
    """Hand part decisions to the line's PLC over OPC UA (request/acknowledge handshake, once per part), or
    with `transport: mqtt` in the config to an MQTT broker (Sparkplug-style topics, QoS 1, retained state)."""
    import asyncio
    import os

    from confluent_kafka import Consumer
    from pymongo import MongoClient

    from infra.endpoints import resolve_endpoints
    from infra.settings import KafkaSettings, MongoSettings
    from parts.plc import PlcBridge
    from parts.plc_mqtt import MqttBridge, MqttConfig, load_bridge_config
    from parts.plc_recipes import RecipeWatcher, kafka_publisher

    logging.getLogger("asyncua").setLevel(logging.WARNING)  # it logs every request at INFO
    plc_config = load_bridge_config(config, os.environ)  # a bad file: ConfigurationError, one line, exit 2
    endpoints = resolve_endpoints()
    kafka_config = KafkaSettings().client_config(endpoints.kafka_bootstrap)
    mongo: MongoClient[dict[str, object]] = MongoClient(endpoints.mongodb_uri)
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": 900_000,  # a PLC that stops acknowledging holds the poll loop
            # One bridge per PLC: static membership lets a restarted bridge take its partitions back at
            # once instead of waiting out the killed one's session.
            "group.instance.id": f"{group}-bridge",
            "session.timeout.ms": 10_000,
        }
    )

    if isinstance(plc_config, MqttConfig):
        bridge = MqttBridge(plc_config, consumer, mongo[MongoSettings().database]["plc_acks"])
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        try:
            bridge.connect()
            consumer.subscribe([topic])
            bridge.run(stop)
        finally:
            bridge.close()
            consumer.close()
            mongo.close()
        return

    async def _main() -> None:
        assert not isinstance(plc_config, MqttConfig)
        recipe = plc_config.recipe
        recipes = RecipeWatcher(recipe, kafka_publisher(kafka_config, recipe.topic)) if recipe else None
        bridge = PlcBridge(plc_config, consumer, mongo[MongoSettings().database]["plc_acks"], recipes=recipes)
        await bridge.connect()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        consumer.subscribe([topic])
        try:
            await bridge.run(stop)
        finally:
            await bridge.close()

    try:
        asyncio.run(_main())
    finally:
        consumer.close()
        mongo.close()


def register(app: typer.Typer) -> None:
    app.command("parts")(parts_command)
    app.command("plc")(plc_command)
