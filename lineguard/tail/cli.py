"""``lineguard tail TOPIC``: print a lineguard topic as JSON lines.

Settings, clients and the Avro readers are imported inside the commands: ``lineguard tail --help`` loads Typer
and little else.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

_ENV = "LINEGUARD_TAIL_"


def tail(
    topic: Annotated[str, typer.Argument(help="a lineguard topic, e.g. lineguard.results")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="start at the oldest record (default: only new ones)")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow", "-f", help="keep waiting for records (default unless --from-beginning)"
        ),
    ] = False,
    camera: Annotated[
        str | None, typer.Option("--camera", envvar=f"{_ENV}CAMERA", help="only this camera")
    ] = None,
    line: Annotated[str | None, typer.Option("--line", envvar=f"{_ENV}LINE", help="only this line")] = None,
    verdict: Annotated[
        str | None, typer.Option("--verdict", envvar=f"{_ENV}VERDICT", help="OK, DEFECT, UNCERTAIN, UNKNOWN")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="stop after N printed records; 0 = no limit")
    ] = 0,
) -> None:
    """Print a topic's records as JSON lines (either wire format), with Kafka coordinates and headers.

    Kafka: KAFKA_BOOTSTRAP_SERVERS, else the local stack; a registry: LINEGUARD_SCHEMA_REGISTRY_URL.
    """
    from infra.settings import RegistrySettings
    from lineguard.lag.cli import kafka_client_config
    from lineguard.tail.reader import Filters, TopicReader
    from schemas.serde import schema_registry_client

    settings = RegistrySettings()
    auth = settings.basic_auth_user_info
    registry = schema_registry_client(settings.url, auth.get_secret_value() if auth else None)
    reader = TopicReader(kafka_client_config(), registry)
    filters = Filters(camera=camera, line=line, verdict=verdict)
    printed = 0
    try:
        for message in reader.read(topic, from_beginning, follow or not from_beginning):
            described = reader.describe(message)
            record = described.get("record")
            if (camera or line or verdict) and (record is None or not filters.keep(record)):
                continue
            sys.stdout.write(json.dumps(described) + "\n")
            sys.stdout.flush()
            printed += 1
            if limit and printed >= limit:
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `lineguard tail ... | head`
        sys.stderr.close()


def register(app: typer.Typer) -> None:
    """Add ``tail`` to the ``lineguard`` command."""
    app.command("tail")(tail)
