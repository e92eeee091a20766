"""The worker's composition root: builds every client and stage a :class:`~workers.pipeline.Worker` runs.

:func:`assemble` opens the MongoDB client and inspection sink, the model registry and the first model, waits
for MongoDB, checks Kafka access (and creates the topics on request), then builds the Kafka outputs, the
decode pool, the frames consumer, the output writer and the health server, in that order, and hands them back
as one :class:`WorkerParts`. The worker itself only runs threads, loops and the drain on what it is given.

Every Kafka client comes from an injectable factory (:mod:`workers.clients`), and the MongoDB client may be
passed in, so the delivery logic can run on stand-ins (tests/unit/test_worker_delivery.py) as well as on real
servers (tests/integration/). The worker's own callbacks (intake, rebalance, liveness) come in as
:class:`Hooks`: the consumer and the health server call back into the runtime that owns them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from infra.claimcheck import GridFSClaimCheckStore
from infra.endpoints import Endpoints, resolve_endpoints
from infra.kafka_access import verify_kafka_access
from infra.kafka_topics import ensure_topics
from infra.mongo_access import access_refused, open_service_client
from infra.settings import KafkaSettings, MongoSettings
from infra.sinks import Sink, close_all
from schemas.errors import ConfigurationError, ServiceUnavailableError
from schemas.records import ImageReference, InspectionResult
from workers.backends import LoadedModel
from workers.clients import ConsumerFactory, ProducerFactory, kafka_consumer, kafka_producer
from workers.consumer import FrameConsumer, Intake, RebalanceListener
from workers.deadline_stage import DeadlineStage
from workers.metrics import HealthServer, WorkerMetrics
from workers.offsets import OffsetTracker
from workers.serving import ModelSource, Serving, open_worker_registry
from workers.settings import WorkerSettings
from workers.sinks.kafka import KafkaOutputs
from workers.sinks.mongo import MongoInspectionSink
from workers.sinks.writer import OutputWriter
from workers.startup import wait_for_service

log = logging.getLogger(__name__)

# A sink that buffers gets this long at shutdown to write what it holds (MongoDB's buffers nothing).
SINK_FLUSH_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the built parts call back into: the runtime that owns them."""

    intake: Intake  # the poll thread hands every tracked record here
    listener: RebalanceListener
    is_live: Callable[[], bool]
    is_ready: Callable[[], bool]
    stop: threading.Event  # set while waiting for a service: give up the start


@dataclass(frozen=True, slots=True)
class Clients:
    """Where the clients come from: the real ones by default, stand-ins in unit tests."""

    consumer_factory: ConsumerFactory = kafka_consumer
    producer_factory: ProducerFactory = kafka_producer
    mongo_client: Any = None  # a pymongo MongoClient; None: one is opened from the settings (and closed)
    verify_access: Callable[[dict[str, Any]], object] = verify_kafka_access  # raises on a refused login


@dataclass(frozen=True, slots=True)
class WorkerParts:
    """Every part of a started worker; the worker closes them (:meth:`close`) at shutdown."""

    mongo_client: Any
    mongo: MongoInspectionSink
    # Every sink the documents go to, MongoDB first; the writer acknowledges a record once all took it.
    document_sinks: tuple[Sink[InspectionResult], ...]
    models: ModelSource
    serving: Serving  # the model served from the first batch on
    outputs: KafkaOutputs
    pool: ThreadPoolExecutor
    consumer: FrameConsumer
    writer: OutputWriter
    health: HealthServer | None

    def close(self, sink_flush_timeout_s: float = SINK_FLUSH_TIMEOUT_S) -> None:
        """Close what holds a connection or a port (the consumer leaves its group; commits nothing).

        The document sinks are flushed and closed before the MongoDB client they may share goes.
        """
        self.consumer.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.health is not None:
            self.health.close()
        try:
            close_all(self.document_sinks, sink_flush_timeout_s)
        finally:
            self.mongo_client.close()


Assembler = Callable[[Hooks], WorkerParts]


def assemble(
    settings: WorkerSettings,
    hooks: Hooks,
    *,
    tracker: OffsetTracker,
    metrics: WorkerMetrics,
    deadline: DeadlineStage | None,
    kafka: KafkaSettings,
    mongo: MongoSettings,
    endpoints: Endpoints | None = None,
    model: LoadedModel | None = None,
    clients: Clients | None = None,
) -> WorkerParts:
    """Build and connect every part; on any failure close what was opened so far and raise."""
    clients = clients if clients is not None else Clients()
    opened: list[Callable[[], None]] = []  # closers, in the order opened
    try:
        return _build(
            settings, hooks, tracker, metrics, deadline, kafka, mongo, endpoints, model, clients, opened
        )
    except BaseException:
        for close in reversed(opened):
            try:
                close()
            except Exception:  # quietly: the start-up error is the one to report
                log.debug("closing a part of a failed start", exc_info=True)
        raise


def _build(
    s: WorkerSettings,
    hooks: Hooks,
    tracker: OffsetTracker,
    metrics: WorkerMetrics,
    deadline: DeadlineStage | None,
    kafka: KafkaSettings,
    mongo_settings: MongoSettings,
    endpoints: Endpoints | None,
    preloaded: LoadedModel | None,
    clients: Clients,
    opened: list[Callable[[], None]],
) -> WorkerParts:
    endpoints = endpoints if endpoints is not None else resolve_endpoints()
    mongo_client = clients.mongo_client
    if mongo_client is None:
        uri = (
            mongo_settings.uri.get_secret_value() if mongo_settings.uri is not None else endpoints.mongodb_uri
        )
        # Socket, connect, heartbeat and selection timeouts that notice a half-open link in seconds (a URI
        # option wins): a timed-out write is retried by the sink, idempotent by _id.
        mongo_client = open_service_client(uri)
    opened.append(mongo_client.close)
    mongo = MongoInspectionSink(
        mongo_client[mongo_settings.database],
        s.mongo_collection,
        write_concern_w=mongo_settings.write_concern_w,
        journal=mongo_settings.write_concern_journal,
    )
    # The model first: a wrong path or a broken artifact is a configuration error to report at once.
    # (MongoClient() does not connect; the first network round trip is ensure_indexes below.)
    registry = open_worker_registry(s)
    models = ModelSource(s, _claim_check_reader(mongo_client, mongo_settings.database, s), registry)
    serving = models.initial(preloaded=preloaded)
    wait_for_service(lambda: _ensure_indexes(mongo), "MongoDB", s.startup_timeout_s, hooks.stop)
    client_config = kafka.client_config(endpoints.kafka_bootstrap)
    # librdkafka only logs a refused login and retries for ever: ask once, so it is one clear error.
    clients.verify_access(client_config)
    if s.create_topics:
        _ensure_topics(s, kafka, client_config)
    outputs = KafkaOutputs(
        {**client_config, **s.producer_config()},
        s.topics,
        transactional=s.exactly_once,
        producer_factory=clients.producer_factory,
    )
    pool = ThreadPoolExecutor(max_workers=s.decode_threads, thread_name_prefix="worker-decode")
    opened.append(lambda: pool.shutdown(wait=False, cancel_futures=True))
    consumer = FrameConsumer(
        {**client_config, **s.consumer_config()},
        s.frames_topic,
        tracker,
        hooks.intake,
        hooks.listener,
        metrics,
        max_in_flight=s.max_in_flight,
        commit_offsets=not s.exactly_once,
        commit_interval_s=s.commit_interval_ms / 1000.0,
        revoke_timeout_s=s.drain_timeout_s,
        hold=deadline.hold if deadline is not None else None,
        consumer_factory=clients.consumer_factory,
    )
    opened.append(consumer.close)
    document_sinks: tuple[Sink[InspectionResult], ...] = (mongo,)
    writer = OutputWriter(
        tracker,
        outputs,
        document_sinks,
        metrics,
        worker_id=s.worker_id,
        max_message_bytes=s.max_message_bytes,
        group_metadata=consumer.group_metadata,
    )
    health = _health_server(s, metrics, hooks) if s.metrics_port else None
    return WorkerParts(
        mongo_client, mongo, document_sinks, models, serving, outputs, pool, consumer, writer, health
    )


def _ensure_indexes(mongo: MongoInspectionSink) -> None:
    from pymongo.errors import OperationFailure, PyMongoError

    try:
        mongo.ensure_indexes()
    except OperationFailure as exc:
        refused = access_refused(exc)  # a wrong or missing password is the user's to fix
        if refused is not None:
            raise refused from None
        raise ServiceUnavailableError(f"MongoDB is not reachable: {exc}") from exc
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"MongoDB is not reachable: {exc}") from exc


def _ensure_topics(s: WorkerSettings, kafka: KafkaSettings, client_config: dict[str, Any]) -> None:
    """The worker may start before any camera: its topics must exist, or it would wait for the next
    metadata refresh (minutes) to see the frames topic and fail to write its outputs."""
    ensure_topics(
        client_config,
        [s.frames_topic, s.results_topic, s.defect_events_topic, s.dead_letter_topic],
        partitions=s.topic_partitions,
        replication_factor=kafka.topic_replication_factor,
        min_insync_replicas=kafka.topic_min_insync_replicas,
        max_message_bytes=s.max_message_bytes,
        timeout_s=30.0,
    )


def _claim_check_reader(
    mongo_client: Any, database: str, s: WorkerSettings
) -> Callable[[ImageReference], bytes]:
    store = GridFSClaimCheckStore(mongo_client, database, s.claim_check_bucket)

    def read(reference: ImageReference) -> bytes:
        return store.get(reference)

    return read


def _health_server(s: WorkerSettings, metrics: WorkerMetrics, hooks: Hooks) -> HealthServer:
    try:
        return HealthServer(
            metrics, s.metrics_host, s.metrics_port, is_live=hooks.is_live, is_ready=hooks.is_ready
        )
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {s.metrics_host}:{s.metrics_port}: {exc.strerror or exc}"
        ) from exc
