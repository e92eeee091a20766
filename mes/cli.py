"""``lineguard sink postgres``: the results topic into PostgreSQL for the MES (see :mod:`mes.consumer`).

PostgreSQL comes from ``POSTGRES_URI`` (or ``--postgres-uri``), else the local server ``lineguard stack up
--with postgres`` started. Exit codes: 0 after SIGTERM/SIGINT, 1 when PostgreSQL stayed away longer than
``--outage-timeout-s``, 2 for a refused login or an unreachable server at start.

Settings, clients and psycopg are imported inside the commands: ``lineguard sink postgres --help`` loads Typer
and little else.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated

import typer

from infra.endpoints import POSTGRES, POSTGRES_ENV, resolve_endpoints, resolve_service
from schemas.serde import schema_registry_client
from schemas.topics import TopicNames

log = logging.getLogger(__name__)
app = typer.Typer(help="Sinks that consume the results topic.", no_args_is_help=True)


def postgres_uri(explicit: str | None) -> str:
    """The option's URI, else ``POSTGRES_URI``, else the local stack's (`stack up --with postgres`)."""
    return explicit or resolve_service(POSTGRES, POSTGRES_ENV)


@app.command("postgres")
def postgres_command(
    postgres: Annotated[
        str | None, typer.Option("--postgres-uri", envvar="POSTGRES_URI", help="PostgreSQL URI")
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(envvar="LINEGUARD_SINK_TOPIC", help="results topic (default: the deployment's)"),
    ] = None,
    topic_prefix: Annotated[
        str | None,
        typer.Option(envvar="LINEGUARD_SINK_TOPIC_PREFIX", help="topics of `lineguard demo --topic-prefix`"),
    ] = None,
    group_id: Annotated[
        str, typer.Option("--group", envvar="LINEGUARD_SINK_GROUP", help="consumer group")
    ] = "lineguard-postgres-sink",
    instance_id: Annotated[
        str | None,
        typer.Option(
            envvar="LINEGUARD_SINK_INSTANCE_ID",
            help="static group member id: a restarted sink takes its partitions back at once",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(min=1, max=100_000, envvar="LINEGUARD_SINK_BATCH_SIZE", help="records per transaction"),
    ] = 2_000,
    window_seconds: Annotated[
        int,
        typer.Option(
            "--window-s", min=1, envvar="LINEGUARD_SINK_WINDOW_S", help="window of the per-line counts"
        ),
    ] = 60,
    startup_timeout_s: Annotated[
        float,
        typer.Option(
            envvar="LINEGUARD_SINK_STARTUP_TIMEOUT_S", help="wait this long for PostgreSQL at start"
        ),
    ] = 30.0,
    outage_timeout_s: Annotated[
        float,
        typer.Option(envvar="LINEGUARD_SINK_OUTAGE_TIMEOUT_S", help="give up after an outage this long"),
    ] = 3_600.0,
) -> None:
    """Write every inspection result (and per-window counts) to PostgreSQL; offsets after COMMIT."""
    from infra.settings import KafkaSettings, RegistrySettings
    from mes.consumer import PostgresSink, SinkConfig

    names = TopicNames.with_prefix(topic_prefix) if topic_prefix else TopicNames()
    kafka = KafkaSettings()
    bootstrap = kafka.bootstrap_servers or resolve_endpoints().kafka_bootstrap
    config = SinkConfig(
        postgres_uri=postgres_uri(postgres),
        topic=topic or names.results,
        group_id=group_id,
        instance_id=instance_id,
        batch_size=batch_size,
        window_seconds=window_seconds,
        startup_timeout_s=startup_timeout_s,
        outage_timeout_s=outage_timeout_s,
    )
    registry_settings = RegistrySettings()
    auth = registry_settings.basic_auth_user_info
    registry = schema_registry_client(registry_settings.url, auth.get_secret_value() if auth else None)
    sink = PostgresSink(kafka.client_config(bootstrap), config, registry)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("postgres sink: %s -> PostgreSQL, group %s", config.topic, config.group_id)
    stats = sink.run(stop)
    typer.echo(json.dumps({"rows": stats.rows, "batches": stats.batches, "rejected": stats.rejected,
                           "outages": stats.outages}))  # fmt: skip
