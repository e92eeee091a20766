"""``lineguard counters run | show``: live counters per line and window in Redis (see :mod:`.consumer`).

Redis comes from ``--redis-url`` / ``REDIS_URL``, else the local server ``lineguard stack up --with redis``
started. Exit codes: 0 after SIGTERM/SIGINT, 1 when Redis stayed away longer than ``--outage-timeout-s``,
2 for a bad URL, a refused login or an unreachable server at start.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated

import typer

from infra.endpoints import REDIS, REDIS_ENV, resolve_endpoints, resolve_service
from quality.counters.redis_store import (
    DEFAULT_PREFIX,
    DEFAULT_RETENTION_S,
    RedisStore,
    connect,
    fsync_policy,
)
from schemas.serde import schema_registry_client
from schemas.topics import TopicNames

log = logging.getLogger(__name__)
app = typer.Typer(
    help="Live counters per line and window (Redis), from the results topic.", no_args_is_help=True
)

RedisOption = Annotated[str | None, typer.Option("--redis-url", envvar=REDIS_ENV, help="Redis URL")]
WindowOption = Annotated[
    int,
    typer.Option("--window-s", min=1, max=86_400, envvar="LINEGUARD_COUNTERS_WINDOW_S", help="window length"),
]
PrefixOption = Annotated[
    str, typer.Option(envvar="LINEGUARD_COUNTERS_PREFIX", help="prefix of the Redis keys")
]


def _store(url: str | None, window_s: int, prefix: str, retention_s: int = DEFAULT_RETENTION_S) -> RedisStore:
    client = connect(url or resolve_service(REDIS, REDIS_ENV))
    return RedisStore(client, window_s, prefix=prefix, retention_s=retention_s)


@app.command("run")
def run_command(
    redis_url: RedisOption = None,
    topic: Annotated[
        str | None,
        typer.Option(envvar="LINEGUARD_COUNTERS_TOPIC", help="results topic (default: the deployment's)"),
    ] = None,
    topic_prefix: Annotated[
        str | None,
        typer.Option(
            envvar="LINEGUARD_COUNTERS_TOPIC_PREFIX", help="topics of `lineguard demo --topic-prefix`"
        ),
    ] = None,
    group_id: Annotated[
        str, typer.Option("--group", envvar="LINEGUARD_COUNTERS_GROUP", help="consumer group")
    ] = "lineguard-counters",
    window_s: WindowOption = 60,
    prefix: PrefixOption = DEFAULT_PREFIX,
    retention_s: Annotated[
        int,
        typer.Option(
            min=60, envvar="LINEGUARD_COUNTERS_RETENTION_S", help="keep a window's counters this long"
        ),
    ] = DEFAULT_RETENTION_S,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1, max=50_000, envvar="LINEGUARD_COUNTERS_BATCH_SIZE", help="records per Redis step"
        ),
    ] = 2_000,
    outage_timeout_s: Annotated[
        float,
        typer.Option(
            envvar="LINEGUARD_COUNTERS_OUTAGE_TIMEOUT_S", help="give up after a Redis outage this long"
        ),
    ] = 3_600.0,
) -> None:
    """Count every result per line and window (frames, verdicts, defects per class) in Redis, exactly once."""
    from infra.settings import KafkaSettings, RegistrySettings
    from quality.counters.consumer import CounterConfig, CountersConsumer

    store = _store(redis_url, window_s, prefix, retention_s)
    policy = fsync_policy(store.client)
    if policy != "always":
        log.warning(
            "Redis appendfsync is %s: a Redis crash may lose the last writes; the counters and their offsets "
            "are lost together, so they stay consistent (the lost records are counted again)",
            policy,
        )
    names = TopicNames.with_prefix(topic_prefix) if topic_prefix else TopicNames()
    kafka = KafkaSettings()
    bootstrap = kafka.bootstrap_servers or resolve_endpoints().kafka_bootstrap
    config = CounterConfig(
        topic=topic or names.results,
        group_id=group_id,
        batch_size=batch_size,
        outage_timeout_s=outage_timeout_s,
    )
    registry_settings = RegistrySettings()
    auth = registry_settings.basic_auth_user_info
    registry = schema_registry_client(registry_settings.url, auth.get_secret_value() if auth else None)
    consumer = CountersConsumer(kafka.client_config(bootstrap), config, store, registry)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("counters: %s -> Redis (%d s windows, group %s)", config.topic, window_s, group_id)
    stats = consumer.run(stop)
    typer.echo(json.dumps({"records": stats.records, "counted": stats.counted, "duplicates": stats.duplicates,
                           "rejected": stats.rejected, "batches": stats.batches,
                           "outages": stats.outages}))  # fmt: skip


@app.command("show")
def show_command(
    redis_url: RedisOption = None,
    line: Annotated[list[str] | None, typer.Option("--line", help="only this line (repeatable)")] = None,
    windows: Annotated[
        int, typer.Option("--windows", min=1, max=10_000, help="last N windows per line")
    ] = 10,
    window_s: WindowOption = 60,
    prefix: PrefixOption = DEFAULT_PREFIX,
) -> None:
    """Print the last windows' counters of each line as JSON lines, newest first."""
    store = _store(redis_url, window_s, prefix)
    for line_id in line or store.lines():
        for counts in store.recent(line_id, windows):
            typer.echo(json.dumps(counts.to_json()))
