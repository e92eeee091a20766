"""``lineguard camera``: run one camera producer. Every option has a ``LINEGUARD_CAMERA_*`` fallback.

Settings, clients and the sources are imported inside the commands: ``lineguard camera --help`` loads Typer
and little else.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.endpoints import resolve_endpoints
from infra.kafka_access import verify_kafka_access
from infra.mongo_access import verify_mongodb_access
from infra.settings import KafkaSettings, MongoSettings, RegistrySettings, default_cache_dir
from schemas.errors import ConfigurationError
from schemas.serde import schema_registry_client
from schemas.topics import FRAMES_TOPIC
from streams.sources import open_source
from streams.sources.base import ImageFormat
from streams.sources.spec import SOURCE_SPEC_HELP
from streams.spool import FsyncPolicy, SpoolPolicy

if TYPE_CHECKING:
    from rich.live import Live

    from streams.runner import CameraRunner, Progress

logger = logging.getLogger(__name__)

_ENV = "LINEGUARD_CAMERA_"


def camera(
    source: Annotated[str, typer.Option(envvar=f"{_ENV}SOURCE", help=SOURCE_SPEC_HELP)] = "synthetic",
    camera_id: Annotated[
        str, typer.Option("--camera", envvar=f"{_ENV}CAMERA_ID", help="camera id; the Kafka key")
    ] = "camera-1",
    line: Annotated[str, typer.Option(envvar=f"{_ENV}LINE_ID", help="production line id")] = "line-1",
    station: Annotated[str, typer.Option(envvar=f"{_ENV}STATION_ID", help="station id")] = "station-1",
    topic: Annotated[str, typer.Option(envvar=f"{_ENV}TOPIC", help="frames topic")] = FRAMES_TOPIC,
    partitions: Annotated[
        int, typer.Option(envvar=f"{_ENV}PARTITIONS", help="partitions when the topic is created")
    ] = 3,
    fps: Annotated[
        float, typer.Option(envvar=f"{_ENV}FPS", help="frames per second; 0 = as fast as possible")
    ] = 10.0,
    count: Annotated[int, typer.Option(envvar=f"{_ENV}COUNT", help="stop after N frames; 0 = no limit")] = 0,
    encoding: Annotated[ImageFormat, typer.Option(envvar=f"{_ENV}ENCODING")] = ImageFormat.jpeg,
    quality: Annotated[int, typer.Option(envvar=f"{_ENV}QUALITY", help="JPEG quality 1-100")] = 90,
    resize: Annotated[
        str | None, typer.Option(envvar=f"{_ENV}RESIZE", help="WIDTHxHEIGHT to resize to before encoding")
    ] = None,
    inline_limit: Annotated[
        str, typer.Option(envvar=f"{_ENV}INLINE_LIMIT", help="larger images are claim-checked, or refused")
    ] = "8MiB",
    claim_check: Annotated[
        bool,
        typer.Option(
            "--claim-check/--no-claim-check",
            envvar=f"{_ENV}CLAIM_CHECK",
            help="store images above the inline limit in MongoDB GridFS; off = refuse them",
        ),
    ] = True,
    spool: Annotated[
        bool,
        typer.Option(
            "--spool/--no-spool", envvar=f"{_ENV}SPOOL", help="spool to disk while the broker is unreachable"
        ),
    ] = True,
    spool_dir: Annotated[
        Path | None, typer.Option(envvar=f"{_ENV}SPOOL_DIR", help="default: <cache dir>/spool/<camera id>")
    ] = None,
    spool_max_mb: Annotated[
        float, typer.Option(envvar=f"{_ENV}SPOOL_MAX_MB", help="spool size cap")
    ] = 1024.0,
    spool_policy: Annotated[
        SpoolPolicy,
        typer.Option(
            envvar=f"{_ENV}SPOOL_POLICY", help="when the spool is full: drop-oldest, or block capture"
        ),
    ] = SpoolPolicy.drop_oldest,
    spool_fsync: Annotated[
        FsyncPolicy,
        typer.Option(
            envvar=f"{_ENV}SPOOL_FSYNC",
            help="always: fsync each spooled frame (survives a power cut); never: page cache only",
        ),
    ] = FsyncPolicy.always,
    close_timeout: Annotated[
        float,
        typer.Option(
            "--close-timeout-s", envvar=f"{_ENV}CLOSE_TIMEOUT_S", help="seconds to flush at shutdown"
        ),
    ] = 10.0,
    first_frame_number: Annotated[
        int | None,
        typer.Option(
            envvar=f"{_ENV}FIRST_FRAME_NUMBER",
            help="default: microseconds since the epoch, never below a number this camera used before "
            "(kept in <cache>/frame-sequence/), so numbers keep growing across restarts and clock steps",
        ),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(envvar=f"{_ENV}METRICS_PORT", help="Prometheus /metrics port; 0 = off"),
    ] = 0,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="live progress line on a terminal")
    ] = True,
) -> None:
    """Publish camera frames to Kafka as Avro Frame records.

    Kafka and MongoDB: KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI, else the local stack (`lineguard stack up`).

    Exit codes: 0 = every frame delivered or in the spool (also after Ctrl-C / SIGTERM); 1 = frames lost
    (failed, too large, undelivered, dropped by a full spool under drop-oldest, damaged spool files, disk
    errors; the summary says "lost N"); 2 = configuration mistake.
    """
    from pydantic import ValidationError

    from streams.camera import build_camera
    from streams.runner import install_stop_signals
    from streams.settings import CameraSettings

    try:
        settings = CameraSettings(
            source=source,
            camera_id=camera_id,
            line_id=line,
            station_id=station,
            topic=topic,
            partitions=partitions,
            fps=fps,
            count=count,
            encoding=encoding,
            quality=quality,
            resize=resize,
            inline_limit=inline_limit,
            claim_check=claim_check,
            spool=spool,
            spool_dir=spool_dir,
            spool_max_mb=spool_max_mb,
            spool_policy=spool_policy,
            spool_fsync=spool_fsync,
            close_timeout_s=close_timeout,
            first_frame_number=first_frame_number,
            metrics_port=metrics_port,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigurationError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    # The source first: a wrong path or URL is reported before anything tries to reach Kafka.
    source_handle = open_source(settings.source)
    kafka_settings = KafkaSettings()
    mongo_settings = MongoSettings()
    registry_settings = RegistrySettings()
    auth = registry_settings.basic_auth_user_info
    registry = schema_registry_client(registry_settings.url, auth.get_secret_value() if auth else None)
    bootstrap, mongodb_uri = _endpoints(kafka_settings, mongo_settings, need_mongodb=settings.claim_check)
    # A refused login or TLS handshake is one clear error now, not a camera spooling for ever.
    verify_kafka_access(kafka_settings.client_config(bootstrap))
    if settings.claim_check and mongodb_uri:  # a refused login is an error now; an outage is not
        verify_mongodb_access(mongodb_uri, mongo_settings.database)
    display = _ProgressDisplay(live=progress and sys.stderr.isatty())
    runner = build_camera(
        settings,
        kafka_settings.client_config(bootstrap),
        mongodb_uri,
        mongo_settings.database,
        default_cache_dir(),
        on_progress=display,
        source=source_handle,
        schema_registry=registry,
    )
    if settings.metrics_port:
        _serve_metrics(runner, settings.camera_id, settings.metrics_port)
    restore = install_stop_signals(runner)
    logger.info(
        "camera %s: %s -> %s at %s", settings.camera_id, runner.source.name, settings.topic, bootstrap
    )
    try:
        with display:
            summary = runner.run()
    finally:
        restore()
    level = logging.INFO if summary.exit_code == 0 else logging.ERROR
    logger.log(level, "camera %s: %s", settings.camera_id, summary.describe())
    raise typer.Exit(summary.exit_code)


def _endpoints(kafka: KafkaSettings, mongo: MongoSettings, need_mongodb: bool) -> tuple[str, str | None]:
    """Kafka (always) and MongoDB (for claim-check): the settings' variables, else the local stack."""

    bootstrap = kafka.bootstrap_servers
    mongodb_uri = mongo.uri.get_secret_value() if mongo.uri is not None else None
    if bootstrap and (mongodb_uri or not need_mongodb):
        return bootstrap, mongodb_uri
    endpoints = resolve_endpoints()
    return bootstrap or endpoints.kafka_bootstrap, mongodb_uri or endpoints.mongodb_uri


def _serve_metrics(runner: CameraRunner, camera_id: str, port: int) -> None:
    from streams.metrics import CameraCollector, serve_metrics

    collector = CameraCollector(
        camera_id,
        publisher_stats=lambda: runner.publisher.stats,
        source_stats=lambda: runner.source.stats,
        spool_backlog=lambda: runner.publisher.spool_backlog,
    )
    try:
        serve_metrics(collector, port)
    except OSError as exc:
        runner.source.close()
        raise ConfigurationError(f"cannot serve metrics on port {port}: {exc.strerror}") from exc
    logger.info("metrics on http://0.0.0.0:%d/metrics", port)


class _ProgressDisplay:
    """A live rich status line on a terminal; otherwise one log line every 10 s."""

    def __init__(self, live: bool, log_every_s: float = 10.0) -> None:
        self._live_enabled = live
        self._live: Live | None = None
        self._log_every_s = log_every_s
        self._next_log = 0.0

    def __enter__(self) -> _ProgressDisplay:
        self._next_log = time.monotonic() + self._log_every_s  # the first line once rates mean something
        if self._live_enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def __call__(self, progress: Progress) -> None:
        if self._live is not None:
            self._live.update(progress.line())
            return
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + self._log_every_s
            logger.info("%s", progress.line())
