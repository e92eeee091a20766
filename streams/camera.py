"""Wire one camera producer from its settings: source, encoder, claim-check store, spool, publisher, runner.

Kept apart from the CLI so tests and other programs can build the same producer without Typer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.claimcheck import GridFSClaimCheckStore
from infra.kafka_topics import ensure_topics
from schemas.errors import ConfigurationError, ServiceUnavailableError
from schemas.records import Frame
from schemas.serde import AvroRecordSerializer
from streams.client_logs import librdkafka_logger
from streams.encoder import EncoderOptions, FrameEncoder
from streams.publisher import FramePublisher, PublisherOptions
from streams.runner import CameraRunner, Progress
from streams.sequence import FrameSequence
from streams.settings import CameraSettings
from streams.sources import FrameSource, open_source
from streams.spool import DiskSpool

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

logger = logging.getLogger(__name__)


def default_first_frame_number() -> int:
    """Microseconds since the epoch: a restarted camera continues above every number it used before (it
    publishes far fewer than a million frames a second) as long as the clock never steps back; the camera
    itself guards against that with :class:`streams.sequence.FrameSequence`."""
    return time.time_ns() // 1000


def build_camera(
    settings: CameraSettings,
    kafka_config: Mapping[str, Any],
    mongodb_uri: str | None,
    mongodb_database: str,
    cache_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    create_topic: bool = True,
    source: FrameSource | None = None,
    schema_registry: SchemaRegistryClient | None = None,
) -> CameraRunner:
    """Everything a camera process runs; configuration mistakes raise :class:`ConfigurationError` here.
    ``source`` is opened from ``settings.source`` unless given (already opened, e.g. to check it early).
    With a ``schema_registry`` client, records use Confluent framing; without, Avro single-object encoding."""
    if source is None:
        source = open_source(settings.source)
    # librdkafka logs through Python logging (rate-limited) instead of printing every reconnect to stderr.
    kafka_config = {"logger": librdkafka_logger(), **kafka_config}
    try:
        first_number, reserve = settings.first_frame_number, None
        if first_number is None:
            # The clock, but never below a number a previous run may have used (the clock can step back).
            sequence = FrameSequence(settings.sequence_path(cache_dir))
            first_number, reserve = sequence.start(), sequence.reserve
        encoder = FrameEncoder(
            camera_id=settings.camera_id,
            line_id=settings.line_id,
            station_id=settings.station_id,
            options=EncoderOptions(
                format=settings.encoding, jpeg_quality=settings.quality, resize=settings.resize_to
            ),
            next_frame_number=first_number,
            reserve=reserve,
        )
        options = PublisherOptions(topic=settings.topic, inline_limit_bytes=settings.inline_limit_bytes)
        claim_check = None
        if settings.claim_check:
            if not mongodb_uri:
                raise ConfigurationError(
                    "claim-check needs MongoDB: set MONGODB_URI, run `lineguard stack up`, "
                    "or pass --no-claim-check"
                )
            claim_check = _gridfs_store(
                mongodb_uri, mongodb_database, settings.claim_check_bucket, settings.claim_check_max_bytes
            )
        spool = None
        if settings.spool:
            spool = DiskSpool(
                settings.spool_directory(cache_dir),
                max_bytes=int(settings.spool_max_mb * 1024 * 1024),
                policy=settings.spool_policy,
                fsync=settings.spool_fsync,
            )
        if create_topic:
            _ensure_topic(kafka_config, settings, spool_enabled=spool is not None)
        publisher = FramePublisher(
            options,
            kafka_config,
            AvroRecordSerializer(Frame, schema_registry),
            claim_check=claim_check,
            spool=spool,
        )
    except BaseException:
        source.close()
        raise
    return CameraRunner(
        source,
        encoder,
        publisher,
        fps=settings.fps,
        count=settings.count,
        close_timeout_s=settings.close_timeout_s,
        on_progress=on_progress,
    )


def _gridfs_store(uri: str, database: str, bucket: str, max_bytes: int | None) -> GridFSClaimCheckStore:
    from pymongo import MongoClient

    # MongoClient connects lazily: a camera that never sees a large frame never needs MongoDB to be up.
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5_000)
    return GridFSClaimCheckStore(client, database, bucket, max_store_bytes=max_bytes)


def _ensure_topic(kafka_config: Mapping[str, Any], settings: CameraSettings, spool_enabled: bool) -> None:
    try:
        ensure_topics(kafka_config, [settings.topic], partitions=settings.partitions, timeout_s=10.0)
    except ServiceUnavailableError as exc:
        if not spool_enabled:
            raise
        # Store-and-forward exists for exactly this: start capturing, send when the broker is back.
        logger.warning(
            "could not check or create topic %s (%s); frames go to the spool meanwhile", settings.topic, exc
        )
