"""``lineguard lag``: serve the frames topic's consumer lag on /metrics, read from the broker.

Settings, clients and prometheus_client are imported inside the commands: ``lineguard lag --help`` loads Typer
and little else.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.kafka_access import verify_kafka_access
from schemas.records import Frame
from schemas.serde import AvroRecordDeserializer, schema_registry_client
from schemas.topics import FRAMES_TOPIC

if TYPE_CHECKING:  # the exporter (prometheus_client) loads with the command
    from lineguard.lag.exporter import LagSnapshot

log = logging.getLogger(__name__)

_ENV = "LINEGUARD_LAG_"
DEFAULT_PORT = 9101


def kafka_client_config() -> dict[str, Any]:
    """The process's Kafka settings (KAFKA_BOOTSTRAP_SERVERS, LINEGUARD_KAFKA_*), access verified once."""
    from infra.settings import KafkaSettings
    from lineguard.stack.endpoints import resolve_endpoints

    config = KafkaSettings().client_config(resolve_endpoints().kafka_bootstrap)
    verify_kafka_access(config)
    return config


def frame_deserializer() -> AvroRecordDeserializer[Frame]:
    """Reads both wire formats; a registry (LINEGUARD_SCHEMA_REGISTRY_URL) for Confluent-framed frames."""
    from infra.settings import RegistrySettings

    settings = RegistrySettings()
    auth = settings.basic_auth_user_info
    registry = schema_registry_client(settings.url, auth.get_secret_value() if auth else None)
    return AvroRecordDeserializer(Frame, registry)


def lag(
    group: Annotated[
        str, typer.Option("--group", envvar=f"{_ENV}GROUP", help="the workers' consumer group")
    ] = "lineguard-workers",
    topic: Annotated[str, typer.Option("--topic", envvar=f"{_ENV}TOPIC", help="frames topic")] = FRAMES_TOPIC,
    port: Annotated[
        int, typer.Option("--port", envvar=f"{_ENV}PORT", min=0, max=65535, help="Prometheus /metrics port")
    ] = DEFAULT_PORT,
    interval_s: Annotated[
        float, typer.Option("--interval-s", envvar=f"{_ENV}INTERVAL_S", min=0.1, help="seconds between reads")
    ] = 10.0,
    silent_after_s: Annotated[
        float,
        typer.Option(
            "--silent-after-s",
            envvar=f"{_ENV}SILENT_AFTER_S",
            min=1,
            help="a line with no frame this long is silent",
        ),
    ] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="print one reading as JSON and exit")] = False,
) -> None:
    """Export the frames topic's consumer lag (records and seconds, per partition and line) for Prometheus.

    Reads the group's committed offsets from the broker, so it works with zero workers running.
    """
    from lineguard.lag.exporter import LagMetrics, LagReader, run_exporter

    reader = LagReader(kafka_client_config(), group, topic, frame_deserializer())
    try:
        if once:
            snapshot = reader.read()
            typer.echo(json.dumps(_describe(snapshot, silent_after_s)))
            return
        from prometheus_client import start_http_server

        metrics = LagMetrics()
        server, thread = start_http_server(port, registry=metrics.registry)
        stop = threading.Event()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("%s received: stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        log.info("lag of group %s on %s at http://0.0.0.0:%d/metrics", group, topic, port)
        try:
            run_exporter(reader, metrics, interval_s, silent_after_s, stop)
        finally:
            server.shutdown()
            thread.join(timeout=5)
    finally:
        reader.close()


def _describe(snapshot: LagSnapshot, silent_after_s: float) -> dict[str, Any]:
    now = snapshot.taken_at
    return {
        "records": snapshot.records,
        "backlog_seconds": round(snapshot.backlog_seconds, 3),
        "partitions": [
            {"partition": p.partition, "records": p.records, "seconds": round(p.seconds(now), 3)}
            for p in snapshot.partitions
        ],
        "lines": {
            line: {
                "seconds": round(snapshot.line_seconds().get(line, 0.0), 3),
                "silent": (now - last).total_seconds() > silent_after_s,
            }
            for line, last in sorted(snapshot.last_frame_at.items())
        },
    }


def register(app: typer.Typer) -> None:
    """Add ``lag`` to the ``lineguard`` command."""
    app.command("lag")(lag)
