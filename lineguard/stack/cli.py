"""``lineguard stack up | down | status | logs``: the local Kafka + MongoDB stack from the command line.

Progress goes to stderr; ``up`` prints the addresses (as ``export`` lines a shell can ``eval``) to stdout.
"""

from __future__ import annotations

import json
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from infra.endpoints import MQTT_ENV, POSTGRES_ENV, REDIS_ENV
from lineguard.stack import security
from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV, mongodb_uri_for
from lineguard.stack.launcher import SECURE_PORT, LocalStack
from lineguard.stack.mosquitto import MosquittoServer
from lineguard.stack.mosquitto import local_server as local_mosquitto
from lineguard.stack.postgres import local_server
from lineguard.stack.processes import tail
from lineguard.stack.redis_server import RedisServer
from lineguard.stack.redis_server import local_server as local_redis
from lineguard.stack.settings import StackSettings
from lineguard.stack.state import KAFKA, MONGODB, SERVICES, ServiceState, StackState
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from lineguard.stack.launcher import LocalStack
    from lineguard.stack.postgres import PostgresServer

app = typer.Typer(help="Start, stop and inspect the local Kafka + MongoDB stack.", no_args_is_help=True)

ENV_OF = {KAFKA: KAFKA_ENV, MONGODB: MONGODB_ENV}


class Service(StrEnum):
    kafka = KAFKA
    mongodb = MONGODB


ServiceOption = typer.Option(None, "--service", "-s", help="only this service (repeatable); default: both")


class Extra(StrEnum):
    postgres = "postgres"
    redis = "redis"
    mqtt = "mqtt"


WithOption = typer.Option(
    None,
    "--with",
    help="also this optional server (repeatable): postgres (for `lineguard sink postgres`), redis (for "
    "`lineguard counters run`), mqtt (mosquitto, for `lineguard plc` over MQTT)",
)


def _postgres(extras: list[Extra] | None) -> bool:
    """Whether PostgreSQL is asked for and not given by POSTGRES_URI (then lineguard uses that one)."""

    if not extras or Extra.postgres not in extras:
        return False
    if os.environ.get(POSTGRES_ENV):
        typer.echo(f"{POSTGRES_ENV} is set: using it, not starting postgres", err=True)
        return False
    return True


def _redis(extras: list[Extra] | None) -> bool:
    """Whether Redis is asked for and not given by REDIS_URL (then lineguard uses that one)."""
    if not extras or Extra.redis not in extras:
        return False
    if os.environ.get(REDIS_ENV):
        typer.echo(f"{REDIS_ENV} is set: using it, not starting redis", err=True)
        return False
    return True


def _mqtt(extras: list[Extra] | None) -> bool:
    """Whether the MQTT broker is asked for and not given by MQTT_URL (then lineguard uses that one)."""
    if not extras or Extra.mqtt not in extras:
        return False
    if os.environ.get(MQTT_ENV):
        typer.echo(f"{MQTT_ENV} is set: using it, not starting mosquitto", err=True)
        return False
    return True


def _mqtt_server() -> MosquittoServer:
    settings = StackSettings()
    return local_mosquitto(settings.state_dir or settings.cache_dir / "stack")


def _redis_server() -> RedisServer:
    settings = StackSettings()
    return local_redis(settings.state_dir or settings.cache_dir / "stack")


def _postgres_server() -> PostgresServer:
    settings = StackSettings()
    return local_server(settings.state_dir or settings.cache_dir / "stack")


def _names(services: list[Service] | None) -> list[str]:
    return [s.value for s in services] if services else list(SERVICES)


def _stack(secure: bool = False) -> LocalStack:
    started = time.monotonic()

    def progress(message: str) -> None:
        typer.echo(f"[{time.monotonic() - started:6.1f}s] {message}", err=True)

    settings = StackSettings()
    if secure:
        settings = settings.model_copy(update={"secure": True})
    return LocalStack(settings, progress=progress)


@app.command()
def up(
    services: list[Service] | None = ServiceOption,
    kafka_port: int | None = typer.Option(None, help="Kafka listener port (default: previous or free)"),
    kafka_controller_port: int | None = typer.Option(None, help="KRaft controller port"),
    mongodb_port: int | None = typer.Option(None, help="MongoDB port (default: previous or free)"),
    secure: bool = typer.Option(
        False,
        "--secure",
        envvar="LINEGUARD_STACK_SECURE",
        help="also a SASL_SSL Kafka listener (SCRAM-SHA-512, test CA made now) and MongoDB authentication; "
        "the export lines then carry the credentials",
    ),
    extras: list[Extra] | None = WithOption,
) -> None:
    """Start Apache Kafka (KRaft) and MongoDB/FerretDB, wait until healthy and print their addresses.

    When KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI are set, lineguard uses those servers and starts nothing
    for them."""
    wanted = _names(services)
    external = [name for name in wanted if os.environ.get(ENV_OF[name])]
    for name in external:
        typer.echo(f"{ENV_OF[name]} is set: using it, not starting {name}", err=True)
    to_start = [name for name in wanted if name not in external]
    if _postgres(extras):
        server = _postgres_server()
        server.start()
        typer.echo(f"postgres running on 127.0.0.1:{server.port} (data: {server.home})", err=True)
        typer.echo(f"export POSTGRES_URI={server.uri}")
    if _redis(extras):
        redis = _redis_server()
        redis.start()
        typer.echo(f"redis running on 127.0.0.1:{redis.port} (data: {redis.home})", err=True)
        typer.echo(f"export {REDIS_ENV}={redis.uri}")
    if _mqtt(extras):
        broker = _mqtt_server()
        broker.start()
        typer.echo(f"mosquitto running on 127.0.0.1:{broker.port} (data: {broker.home})", err=True)
        typer.echo(f"export {MQTT_ENV}={broker.uri}")
    if not to_start:
        return
    stack = _stack(secure)
    began = time.monotonic()
    result = stack.up(to_start, kafka_port, kafka_controller_port, mongodb_port)
    for name in result.already_running:
        typer.echo(f"{name} was already running", err=True)
    typer.echo(f"stack up in {time.monotonic() - began:.1f} s (logs: {stack.logs_dir})", err=True)
    if secure:
        _print_secure_exports(stack.state_dir, result.state, to_start)
        return
    for name in to_start:
        service = result.state.services[name]
        value = service.address if name == KAFKA else mongodb_uri_for(service)
        typer.echo(f"export {ENV_OF[name]}={value}")


def _print_secure_exports(state_dir: Path, state: StackState, services: list[str]) -> None:
    """The secure endpoints as export lines. stdout only: the passwords must not reach a log."""
    import shlex

    found = security.load_secrets(state_dir)
    if found is None:
        raise ConfigurationError(f"no secure-stack secrets in {security.security_dir(state_dir)}")
    exports: dict[str, str] = {}
    for name in services:
        service = state.services[name]
        if name == KAFKA:
            port = service.extra_ports.get(SECURE_PORT)
            if port is None:
                raise ConfigurationError(
                    "Kafka was already running without its SASL_SSL listener; run `lineguard stack down "
                    "--service kafka` and `lineguard stack up --secure` again"
                )
            bootstrap = f"{service.host}:{port}"
            exports.update(security.kafka_client_environment(bootstrap, found))
            typer.echo(
                f"Kafka SASL_SSL at {bootstrap}, user {found.kafka_user!r}, CA {found.ca_path}; "
                f"passwords are in {found.directory} (mode 0600)",
                err=True,
            )
        else:
            exports[MONGODB_ENV] = security.mongodb_uri_with_credentials(service.host, service.port, found)
    for key, value in exports.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@app.command()
def down(
    services: list[Service] | None = ServiceOption,
    purge: bool = typer.Option(False, "--purge", help="also delete the data and forget the ports"),
    extras: list[Extra] | None = WithOption,
) -> None:
    """Stop the services (SIGTERM, then SIGKILL after a bound); data and ports are kept for the next `up`."""
    if _postgres(extras):
        server = _postgres_server()
        if server.running():
            server.purge() if purge else server.stop()
            typer.echo("stopped: postgres" + (" (data purged)" if purge else ""))
    if _redis(extras):
        redis = _redis_server()
        if redis.running():
            redis.purge() if purge else redis.stop()
            typer.echo("stopped: redis" + (" (data purged)" if purge else ""))
    if _mqtt(extras):
        broker = _mqtt_server()
        if broker.running():
            broker.purge() if purge else broker.stop()
            typer.echo("stopped: mosquitto" + (" (data purged)" if purge else ""))
    stack = _stack()
    wanted = _names(services)
    stopped = stack.down(wanted, purge=purge)
    suffix = " (data purged)" if purge else ""
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}{suffix}")


@app.command()
def status(
    services: list[Service] | None = ServiceOption,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show each service's real state (stale PIDs after a crash are detected). Exit 1 unless all run."""
    stack = _stack()
    statuses = stack.status(_names(services))
    if as_json:
        payload = [
            {
                "service": s.name,
                "health": s.health.value,
                "address": s.address,
                "pid": s.service.pid if s.service else None,
                "detail": s.detail,
                "secure_address": _secure_address(s.service),
            }
            for s in statuses
        ]
        typer.echo(json.dumps(payload, indent=2))
    else:
        for s in statuses:
            typer.echo(f"{s.name:<8} {s.health.value:<9} {s.address:<28} {s.detail}")
            if secure := _secure_address(s.service):
                credentials = stack.state_dir / "security"
                typer.echo(f"{'':<18} {secure:<28} SASL_SSL; CA and passwords in {credentials}")
        for name in _names(services):
            if os.environ.get(ENV_OF[name]):
                typer.echo(f"note: {ENV_OF[name]} is set, so lineguard uses that instead of this {name}")
    if any(s.health.value != "running" for s in statuses):
        raise typer.Exit(1)


def _secure_address(service: ServiceState | None) -> str | None:
    """The SASL_SSL listener of a Kafka started with ``--secure``, else None."""

    port = service.extra_ports.get(SECURE_PORT) if service is not None else None
    return f"{service.host}:{port}" if service is not None and port is not None else None


@app.command()
def logs(
    services: list[Service] | None = ServiceOption,
    lines: int = typer.Option(40, "--lines", "-n", help="how many lines of each log"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines (Ctrl-C stops)"),
) -> None:
    """Print the last lines of the services' logs (and where the files are)."""

    stack = _stack()
    files = [path for paths in stack.log_files(_names(services)).values() for path in paths]
    for path in files:
        typer.echo(f"==> {path} <==")
        for line in tail(path, lines):
            typer.echo(line)
    if follow:
        _follow(files)


def _follow(paths: list[Path]) -> None:
    positions = {path: path.stat().st_size if path.exists() else 0 for path in paths}
    try:
        while True:
            for path in paths:
                if not path.exists():
                    continue
                size = path.stat().st_size
                if size < positions[path]:  # rotated or truncated
                    positions[path] = 0
                if size > positions[path]:
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        handle.seek(positions[path])
                        for line in handle:
                            typer.echo(f"{path.name}: {line.rstrip()}")
                        positions[path] = handle.tell()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
