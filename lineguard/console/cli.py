"""``lineguard console``: serve the inspection web app; ``lineguard console user add|list`` and
``lineguard console token add`` manage who may use it.

Only Typer is imported at module level (``lineguard --help`` stays fast). Passwords are read from stdin
(``--password-stdin``), ``LINEGUARD_CONSOLE_PASSWORD`` or a hidden prompt, never from an argument that
``ps`` would show.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.claimcheck import GridFSClaimCheckStore
from infra.mongo_access import verify_mongodb_access
from lineguard.lag.cli import kafka_client_config
from schemas.errors import ConfigurationError, ServiceUnavailableError
from schemas.serde import schema_registry_client
from schemas.topics import TopicNames

if TYPE_CHECKING:  # pymongo loads in the commands that need MongoDB
    from pymongo.database import Database

log = logging.getLogger(__name__)
_ENV = "LINEGUARD_CONSOLE_"

app = typer.Typer(
    help="The inspection console: live defects, frame viewer and review queue (a web app).",
    invoke_without_command=True,
    no_args_is_help=False,
)
user_app = typer.Typer(help="Console users (stored in MongoDB with hashed passwords).", no_args_is_help=True)
token_app = typer.Typer(
    help="Read-only tokens for screens (Authorization: Bearer ...).", no_args_is_help=True
)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database", envvar="LINEGUARD_MONGODB_DATABASE", help="MongoDB database (default lineguard)"
    ),
]


def _database(name: str | None) -> Database[dict[str, Any]]:
    """The MongoDB database, checked reachable (an unreachable server is one line, not a traceback)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from infra.settings import MongoSettings
    from lineguard.stack.endpoints import resolve_endpoints

    settings = MongoSettings()
    uri = settings.uri.get_secret_value() if settings.uri is not None else resolve_endpoints().mongodb_uri
    database = name or settings.database
    try:
        reachable = verify_mongodb_access(uri, database, timeout_s=10.0)
    except PyMongoError as exc:  # a malformed URI
        raise ConfigurationError(f"MONGODB_URI cannot be used: {type(exc).__name__}") from None
    if not reachable:
        raise ServiceUnavailableError("MongoDB did not answer within 10 s (check MONGODB_URI or the stack)")
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
    return client[database]


def _postgres_read_model(uri: str) -> Any:
    """The PostgreSQL read model on the MES tables, migrated (003 adds the console's indexes); a bad or
    unreachable URI is one line (exit 2). Messages never hold the URI, which may carry the password."""
    import psycopg

    from lineguard.console.queries_pg import PostgresReadModel
    from mes.connect import refused
    from mes.migrations import migrate

    try:
        connection = psycopg.connect(uri, connect_timeout=5)
        migrate(connection)
        connection.commit()
        connection.autocommit = True  # reads only from here on
    except psycopg.OperationalError as exc:
        refusal = refused(exc)
        if refusal is not None:
            raise refusal from None
        reason = str(exc).splitlines()[0].split("failed:", 1)[-1].strip()
        raise ConfigurationError(f"cannot reach PostgreSQL ({reason}): check --postgres-uri") from None
    except psycopg.Error as exc:  # a malformed URI
        raise ConfigurationError(f"--postgres-uri cannot be used: {type(exc).__name__}") from None
    return PostgresReadModel(connection)


def _check_port_free(host: str, port: int) -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@app.callback()
def console(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", envvar=f"{_ENV}HOST", help="address to listen on")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", envvar=f"{_ENV}PORT", min=1, max=65535, help="TCP port")
    ] = 8765,
    database: DatabaseOption = None,
    topic_prefix: Annotated[
        str | None,
        typer.Option(
            "--topic-prefix", envvar=f"{_ENV}TOPIC_PREFIX", help="topics <prefix>.defect-events, ..."
        ),
    ] = None,
    collection: Annotated[
        str, typer.Option("--collection", envvar=f"{_ENV}COLLECTION", help="the workers' results collection")
    ] = "inspections",
    worker_group: Annotated[
        str,
        typer.Option(
            "--worker-group", envvar=f"{_ENV}WORKER_GROUP", help="consumer group whose lag is shown"
        ),
    ] = "lineguard-workers",
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", envvar=f"{_ENV}SECURE_COOKIES", help="behind TLS only")
    ] = False,
    postgres_uri: Annotated[
        str | None,
        typer.Option(
            "--postgres-uri",
            envvar="POSTGRES_URI",
            help="serve the list and tiles from the MES PostgreSQL tables (`lineguard sink postgres`)",
        ),
    ] = None,
) -> None:
    """Serve the console (sign in with a user made by `lineguard console user add`).

    Kafka: KAFKA_BOOTSTRAP_SERVERS (else the local stack); MongoDB: MONGODB_URI; a registry:
    LINEGUARD_SCHEMA_REGISTRY_URL; the list and tiles from PostgreSQL when POSTGRES_URI is given.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not host.strip():
        raise ConfigurationError("--host must not be empty")
    _check_port_free(host, port)
    import uvicorn

    from infra.settings import RegistrySettings
    from lineguard.console.app import ConsoleConfig, create_app

    read_model = _postgres_read_model(postgres_uri) if postgres_uri else None
    db = _database(database)
    registry_settings = RegistrySettings()
    auth = registry_settings.basic_auth_user_info
    config = ConsoleConfig(
        topics=TopicNames.with_prefix(topic_prefix) if topic_prefix else TopicNames(),
        collection=collection,
        worker_group=worker_group,
        secure_cookies=secure_cookies,
        read_model=read_model,
        registry=schema_registry_client(registry_settings.url, auth.get_secret_value() if auth else None),
    )
    web = create_app(db, kafka_client_config(), config, GridFSClaimCheckStore(db.client, db.name))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"lineguard console on http://{shown}:{port}/ (database {db.name}, {config.topics.defect_events})"
    )
    # No access log: URLs carry no secrets, but a busy live page would flood the log for nothing.
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    env = os.environ.get(f"{_ENV}PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise ConfigurationError(f"no password: use --password-stdin or set {_ENV}PASSWORD")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="user name (letters, digits, . _ @ -)")],
    role: Annotated[str, typer.Option("--role", help="viewer, reviewer or admin")] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from the first line of stdin")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Create a user, or replace one (how a password is reset)."""
    from lineguard.console.auth import AccessStore, Role

    if role not in Role.__members__:
        raise ConfigurationError(f"unknown role {role!r}: choose viewer, reviewer or admin")
    password = _read_password(password_stdin)
    store = AccessStore(_database(database))
    store.add_user(name, password, Role[role])
    typer.echo(f"user {name} ({role}) saved")


@user_app.command("list")
def user_list(database: DatabaseOption = None) -> None:
    """The users and their roles (never their passwords)."""
    from lineguard.console.auth import AccessStore

    for user in AccessStore(_database(database)).users():
        typer.echo(f"{user['name']}\t{user['role']}")


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Argument(help="what the token is for, e.g. hall-2-screen")],
    database: DatabaseOption = None,
) -> None:
    """A new read-only token, printed once (only its hash is stored)."""
    from lineguard.console.auth import AccessStore

    if not name.strip() or len(name) > 64:
        raise ConfigurationError("a token name is 1-64 characters")
    typer.echo(AccessStore(_database(database)).add_token(name.strip()))


def register(root: typer.Typer) -> None:
    """Add ``console`` to the ``lineguard`` command."""
    root.add_typer(app, name="console")
