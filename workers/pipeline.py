"""One inference worker: poll -> decode pool -> dynamic batcher -> model -> sinks -> commit.

Threads and queues (every queue bounded, directly or through the in-flight bound that pauses partitions)::

    poll thread (FrameConsumer) --submit--> decode pool (N threads) --decoded--> inference thread
        (DynamicBatcher, model) --sink queue--> sink thread (results, events, dead letters: OutputWriter)
        --documents--> MongoDB thread
    dead letters go from the decode pool straight to the sink queue.

Decode, inference and outputs overlap: while the model runs batch k, the pool decodes the frames of batch
k+1 and the sink and MongoDB threads write batch k-1, so the model is never idle while decoded frames wait.

Delivery: every record gets a :class:`~workers.offsets.Ticket`; the output stage
(:class:`~workers.sinks.writer.OutputWriter`) settles it with the number of outputs it is about to write and
each acknowledgement counts down. The poll thread commits, per partition, only the offset after the longest
run of done records. With ``exactly_once`` the sink thread writes the documents (idempotent by ``_id``), then
outputs and offsets in one Kafka transaction per group of batches instead.

Shutdown (``stop()``, SIGTERM at the CLI): stop polling, let in-flight records finish (bounded by
``drain_timeout_s``), flush the producer, commit, leave the group. ``run()`` returns 0 when it drained
cleanly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
from confluent_kafka import Message

from infra.endpoints import Endpoints, resolve_endpoints
from infra.kafka_access import verify_kafka_access
from infra.mongo_access import access_refused
from infra.settings import KafkaSettings, MongoSettings
from schemas.errors import ConfigurationError, LineguardError, ServiceUnavailableError
from schemas.records import DeadLetterReason, Frame, ImageReference
from schemas.tracecontext import carried_context
from workers.backends import LoadedModel
from workers.batcher import Batch, DynamicBatcher
from workers.consumer import FrameConsumer
from workers.deadline import DeadlinePolicy
from workers.deadline_stage import DeadlineStage, undecoded
from workers.decode import DecodedFrame, FrameDecoder, FrameRejected
from workers.metrics import HealthServer, WorkerMetrics
from workers.offsets import OffsetTracker, PartitionKey, Ticket
from workers.serving import ModelSource, Serving, default_model_path, open_worker_registry
from workers.settings import WorkerSettings
from workers.sinks.dead_letters import RawRecord
from workers.sinks.kafka import KafkaOutputs
from workers.sinks.mongo import MongoInspectionSink
from workers.sinks.writer import InferredBatch, OutputWriter, Rejected, SinkItem
from workers.startup import wait_for_service

__all__ = ["InferredBatch", "Rejected", "Worker", "default_model_path"]

log = logging.getLogger(__name__)

_SINK_QUEUE_BATCHES = 4  # batches waiting for the sink thread before inference blocks
_TRANSACTION_MAX_ITEMS = 16  # queue items coalesced into one transaction
_STORE_ATTEMPTS = 4  # claim-check reads while MongoDB is unreachable, ~10 s each (server selection)


class Worker:
    """A complete worker. ``run()`` blocks until :meth:`stop` (or a fatal error) and returns an exit code.

    Usable in-process (tests, the demo, benchmarks: ``run()`` on a thread, ``stop()`` from another) or as the
    body of ``lineguard worker`` / ``python -m workers``.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        kafka: KafkaSettings | None = None,
        mongo: MongoSettings | None = None,
        endpoints: Endpoints | None = None,
        model: LoadedModel | None = None,
        metrics: WorkerMetrics | None = None,
        accept: Callable[[Message], bool] | None = None,
    ) -> None:
        self.settings = settings
        # Which records to inspect (a shadow replay's range and line/camera filter); the others are done
        # with no output, so their offsets still advance. None: every record.
        self._accept = accept
        self._kafka_settings = kafka if kafka is not None else KafkaSettings()
        self._mongo_settings = mongo if mongo is not None else MongoSettings()
        self._endpoints = endpoints
        self._model = model
        self.metrics = metrics if metrics is not None else WorkerMetrics(role=settings.role)
        self._deadline = _deadline_stage(settings, self.metrics)
        self._stop = threading.Event()
        self._started = threading.Event()
        self._fatal: BaseException | None = None
        self._draining = False
        self._tracker = OffsetTracker()
        self._decoded: queue.Queue[DecodedFrame] = queue.Queue()
        self._sink_queue: queue.Queue[SinkItem] = queue.Queue(maxsize=_SINK_QUEUE_BATCHES)
        self._inference_done = threading.Event()
        self._sinks_done = threading.Event()
        self._mongo_done = threading.Event()
        self._sink_lock = threading.Lock()  # a revoke waits for the write (transaction) in progress
        self._threads: list[threading.Thread] = []
        self._health: HealthServer | None = None
        self._mongo_client: Any = None

    # -- public API ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the worker to drain and exit; safe from signal handlers and other threads."""
        self._stop.set()

    def wait_started(self, timeout_s: float) -> bool:
        """True once the model is loaded and the consumer polls (partitions may still be being assigned)."""
        return self._started.wait(timeout_s)

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def assignment(self) -> set[PartitionKey]:
        """The partitions this worker owns right now."""
        return self._consumer.assignment if self._started.is_set() else set()

    @property
    def ready(self) -> bool:
        return self._started.is_set() and not self._draining and self._fatal is None and self._consumer.alive

    def run(self) -> int:
        """Start, serve until stopped, drain; 0 = clean exit, 1 = stopped by an error."""
        try:
            self._start()
        except ServiceUnavailableError:
            self._release_partial_start()
            if self._stop.is_set():  # SIGTERM while waiting for a service: nothing was consumed, a clean stop
                log.info("worker stopped before it started")
                return 0
            raise
        except BaseException:
            self._release_partial_start()
            raise
        try:
            while not self._stop.wait(0.2):
                problem = self._health_problem()
                if problem is not None:
                    self._fail(problem)
                    break
        finally:
            clean = self._shutdown()
        if self._fatal is not None:
            log.error("worker stopped by an error: %s", self._fatal)
            return 1
        return 0 if clean else 1

    # -- start -----------------------------------------------------------------------------------------
    def _start(self) -> None:
        s = self.settings
        endpoints = self._endpoints if self._endpoints is not None else resolve_endpoints()
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure, PyMongoError

        uri = (
            self._mongo_settings.uri.get_secret_value()
            if self._mongo_settings.uri is not None
            else endpoints.mongodb_uri
        )
        self._mongo_client = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        database = self._mongo_client[self._mongo_settings.database]
        self._mongo = MongoInspectionSink(
            database,
            s.mongo_collection,
            write_concern_w=self._mongo_settings.write_concern_w,
            journal=self._mongo_settings.write_concern_journal,
        )
        # The model first: a wrong path or a broken artifact is a configuration error to report at once.
        # (MongoClient() does not connect; the first network round trip is ensure_indexes below.)
        self._registry = open_worker_registry(s)
        self._models = ModelSource(s, self._claim_check_reader(), self._registry)
        self._use(self._models.initial(preloaded=self._model))

        def ensure_indexes() -> None:
            try:
                self._mongo.ensure_indexes()
            except OperationFailure as exc:
                refused = access_refused(exc)  # a wrong or missing password is the user's to fix
                if refused is not None:
                    raise refused from None
                raise ServiceUnavailableError(f"MongoDB is not reachable: {exc}") from exc
            except PyMongoError as exc:
                raise ServiceUnavailableError(f"MongoDB is not reachable: {exc}") from exc

        wait_for_service(ensure_indexes, "MongoDB", s.startup_timeout_s, self._stop)
        client_config = self._kafka_settings.client_config(endpoints.kafka_bootstrap)
        # librdkafka only logs a refused login and retries for ever: ask once, so it is one clear error.
        verify_kafka_access(client_config)
        if s.create_topics:
            self._ensure_topics(client_config)
        self._outputs = KafkaOutputs(
            {**client_config, **s.producer_config()}, s.topics, transactional=s.exactly_once
        )
        self._pool = ThreadPoolExecutor(max_workers=s.decode_threads, thread_name_prefix="worker-decode")
        self._consumer = FrameConsumer(
            {**client_config, **s.consumer_config()},
            s.frames_topic,
            self._tracker,
            self._intake,
            self,
            self.metrics,
            max_in_flight=s.max_in_flight,
            commit_offsets=not s.exactly_once,
            commit_interval_s=s.commit_interval_ms / 1000.0,
            revoke_timeout_s=s.drain_timeout_s,
            hold=self._deadline.hold if self._deadline is not None else None,
        )
        self._writer = OutputWriter(
            self._tracker,
            self._outputs,
            self._mongo,
            self.metrics,
            worker_id=s.worker_id,
            max_message_bytes=s.max_message_bytes,
            group_metadata=self._consumer.group_metadata,
        )
        if s.metrics_port:
            try:
                self._health = HealthServer(
                    self.metrics,
                    s.metrics_host,
                    s.metrics_port,
                    is_live=self._is_live,
                    is_ready=lambda: self.ready,
                )
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot serve metrics on {s.metrics_host}:{s.metrics_port}: {exc.strerror or exc}"
                ) from exc
        stages = [(self._inference_loop, "worker-inference"), (self._sink_loop, "worker-sinks")]
        if not s.exactly_once:  # with transactions the documents are written inside each transaction
            stages.append((lambda: self._writer.mongo_loop(self._mongo_done), "worker-mongo"))
        for target, name in stages:
            thread = threading.Thread(target=self._guarded(target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._consumer.start()
        self._started.set()
        log.info(
            "worker %s consuming %s as group %s (max batch %d, max wait %.0f ms, %s)",
            s.worker_id,
            s.frames_topic,
            s.group_id,
            s.max_batch_size,
            s.max_wait_ms,
            "exactly once" if s.exactly_once else "at least once",
        )

    def _ensure_topics(self, client_config: dict[str, Any]) -> None:
        """The worker may start before any camera: its topics must exist, or it would wait for the next
        metadata refresh (minutes) to see the frames topic and fail to write its outputs."""
        from infra.kafka_topics import ensure_topics

        s = self.settings
        names = [s.frames_topic, s.results_topic, s.defect_events_topic, s.dead_letter_topic]
        ensure_topics(
            client_config,
            names,
            partitions=s.topic_partitions,
            replication_factor=self._kafka_settings.topic_replication_factor,
            min_insync_replicas=self._kafka_settings.topic_min_insync_replicas,
            max_message_bytes=s.max_message_bytes,
            timeout_s=30.0,
        )

    def _use(self, serving: Serving) -> None:
        """Serve this model from the next batch on (the decode pool picks it up for the next record)."""
        self._serving = serving
        self._model = serving.model
        meta = serving.model.metadata
        self.metrics.model.info(
            {
                "name": meta.name,
                "version": meta.version,
                "task": meta.task.value,
                "backend": serving.model.backend.name,
            }
        )

    def _claim_check_reader(self) -> Any:
        from infra.claimcheck import GridFSClaimCheckStore

        store = GridFSClaimCheckStore(
            self._mongo_client, self._mongo_settings.database, self.settings.claim_check_bucket
        )

        def read(reference: ImageReference) -> bytes:
            return store.get(reference)

        return read

    # -- poll thread -----------------------------------------------------------------------------------
    def _intake(self, message: Message, ticket: Ticket) -> None:
        if self._deadline is not None:
            self._deadline.admit(ticket, message.timestamp()[1])
        self._pool.submit(self._decode_one, message, ticket, datetime.now(UTC))

    # -- decode pool -----------------------------------------------------------------------------------
    def _decode_one(self, message: Message, ticket: Ticket, received_at: datetime) -> None:
        if self._accept is not None and not self._accept(message):
            self._deadline_done(ticket)
            self._tracker.settle(ticket, 0)
            return
        try:
            frame: Frame | None = None
            if self._deadline is not None:
                frame = self._serving.decoder.read_frame(message.value())  # raises FrameRejected for poison
                if self._decided_late(frame, message, ticket, received_at):
                    return
            decoded = self._decode_retrying(self._serving.decoder, message, ticket, received_at, frame)
        except FrameRejected as exc:
            self._deadline_done(ticket)
            self._to_sinks(Rejected(ticket, RawRecord.from_message(message), exc))
            return
        except ServiceUnavailableError as exc:
            # The claim-check store stayed unreachable: the record is not at fault, so no dead letter. Stop
            # without committing it; it is read again once the store is back.
            self._fail(exc)
            self._stop.set()
            return
        except Exception as exc:  # a bug or an unexpected library error: dead-letter the record, keep going
            log.exception(
                "unexpected error decoding %s[%d]@%d", ticket.topic, ticket.partition, ticket.offset
            )
            rejection = FrameRejected(DeadLetterReason.OTHER, f"unexpected decode error: {exc}", exc)
            self._deadline_done(ticket)
            self._to_sinks(Rejected(ticket, RawRecord.from_message(message), rejection))
            return
        self.metrics.stage_seconds.labels("decode").observe(decoded.decode_seconds)
        if self._deadline is not None and self._deadline.late(ticket, decoded.frame):
            self._deadline.mark_late(ticket)  # decided fail-safe with the next batch, not on its own
        self._decoded.put(decoded)

    def _decided_late(self, frame: Frame, message: Message, ticket: Ticket, received_at: datetime) -> bool:
        """Deadline check on the record alone (no pixels decoded): a late frame joins the next batch, which
        gives it its fail-safe result (late frames decided in groups, not one output item each)."""
        assert self._deadline is not None
        if not self._deadline.late(ticket, frame):
            return False
        self._deadline.mark_late(ticket)
        self._decoded.put(undecoded(ticket, frame, received_at, _trace_id(message)))
        return True

    def _deadline_done(self, ticket: Ticket) -> None:
        if self._deadline is not None:
            self._deadline.done(ticket)

    def _decode_retrying(
        self,
        decoder: FrameDecoder,
        message: Message,
        ticket: Ticket,
        received_at: datetime,
        frame: Frame | None = None,
    ) -> DecodedFrame:
        """Decode; while the claim-check store is unreachable, wait and try again, a bounded number of times
        (each read already waits for MongoDB's server selection): a store outage must not turn good frames
        into dead letters."""
        for attempt in range(1, _STORE_ATTEMPTS + 1):
            try:
                trace_id = _trace_id(message)
                if frame is not None:  # read already (the deadline check)
                    return decoder.decode_frame(frame, ticket, received_at, trace_id)
                return decoder.decode(message.value(), ticket, received_at, trace_id)
            except ServiceUnavailableError as exc:
                if attempt == _STORE_ATTEMPTS or self._stop.is_set():
                    raise
                log.warning("claim-check store unreachable (%s); retrying %s", exc, ticket)
                time.sleep(attempt)
        raise AssertionError("unreachable")

    def _to_sinks(self, item: SinkItem) -> None:
        """Queue a dead letter for the sink thread. Gives up once the sinks stopped or failed: a decode thread
        blocked on the full queue would otherwise keep the process alive forever after a fatal error (the
        pool's threads are joined at exit). A record given up is not committed, so it is read again."""
        while not self._sinks_done.is_set() and self._fatal is None:
            try:
                self._sink_queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- inference thread ------------------------------------------------------------------------------
    def _inference_loop(self) -> None:
        batcher: DynamicBatcher[DecodedFrame] = DynamicBatcher(
            self.settings.max_batch_size, self.settings.max_wait_ms
        )
        while True:
            batch = self._next_batch(batcher)
            if batch is not None:
                self._infer(batch)
            # Between batches (and while idle): follow the registry's production alias; the watcher reads
            # the registry at most once a second, otherwise this is a clock read.
            swapped = self._models.poll()
            if swapped is not None:
                self._use(swapped)
            if batch is None and self._inference_done.is_set() and self._decoded.empty() and not len(batcher):
                return

    def _next_batch(self, batcher: DynamicBatcher[DecodedFrame]) -> Batch[DecodedFrame] | None:
        wait = batcher.time_until_due()
        try:
            item = self._decoded.get(timeout=0.05 if wait is None else min(wait, 0.05))
        except queue.Empty:
            batch = batcher.due()
            if batch is None and self._inference_done.is_set():
                batch = batcher.flush()
            return batch
        batch = batcher.add(item, arrived_at=item.ready_at)
        # Take whatever else is already decoded: frames that waited while the model ran close at once.
        while batch is None:
            try:
                item = self._decoded.get_nowait()
            except queue.Empty:
                break
            batch = batcher.add(item, arrived_at=item.ready_at)
        return batch if batch is not None else batcher.due()

    def _infer(self, batch: Batch[DecodedFrame]) -> None:
        frames = [frame for frame in batch.items if self._tracker.is_live(frame.ticket)]
        serving = self._serving
        if self._deadline is not None:
            for frame in batch.items:
                if not self._tracker.is_live(frame.ticket):
                    self._deadline.done(frame.ticket)
            frames, late = self._deadline.split(frames)
            if late:
                self._sink_queue.put(self._deadline.fail_safe(late, serving.builder))
        if not frames:
            return  # every frame belonged to revoked partitions (their new owner inspects them), or was late
        # Frames decoded for a model that has since been swapped are preprocessed again for this one.
        tensors = [
            frame.tensor if frame.generation == serving.generation else serving.preprocess(frame.image)
            for frame in frames
        ]
        started = time.perf_counter()
        # Image sizes let a letterboxed model's boxes and masks be mapped back onto each image.
        sizes = [(frame.image.shape[1], frame.image.shape[0]) for frame in frames]
        predictions = serving.model.predict(np.stack(tensors), sizes)
        seconds = time.perf_counter() - started
        self.metrics.stage_seconds.labels("inference").observe(seconds)
        if self._deadline is not None:
            self._deadline.observe_batch(len(frames), seconds)
        self.metrics.batch_size.observe(len(frames))
        self._sink_queue.put(InferredBatch(frames, predictions, datetime.now(UTC), serving.builder))

    # -- sink thread -----------------------------------------------------------------------------------
    def _sink_loop(self) -> None:
        while True:
            try:
                items = [self._sink_queue.get(timeout=0.05)]
            except queue.Empty:
                self._outputs.serve(0)
                self._writer.raise_on_delivery_failure()
                if self._sinks_done.is_set():
                    return
                continue
            while len(items) < _TRANSACTION_MAX_ITEMS:
                try:
                    items.append(self._sink_queue.get_nowait())
                except queue.Empty:
                    break
            # Thresholds may be edited while the worker runs: re-read between batches (a stat if unchanged).
            self._serving.builder.refresh_thresholds()
            started = time.perf_counter()
            if self.settings.exactly_once:  # takes the lock per attempt: a revoke may come between attempts
                self._writer.write_transaction(items, self._sink_lock, give_up=self._sinks_done.is_set)
            else:
                with self._sink_lock:
                    for item in items:
                        self._writer.write(item, give_up=self._giving_up)
            self.metrics.stage_seconds.labels("sinks").observe(time.perf_counter() - started)
            self._outputs.serve(0)
            self._writer.raise_on_delivery_failure()

    def _giving_up(self) -> bool:
        return self._mongo_done.is_set() or self._fatal is not None

    # -- rebalance (called by the consumer on the poll thread) -----------------------------------------
    def partitions_assigned(self, keys: list[PartitionKey]) -> None:
        return  # librdkafka starts from the committed offsets; the tracker starts a new epoch on first track

    def partitions_revoked(self, keys: list[PartitionKey], lost: bool) -> None:
        # Waits for the write or transaction in progress, so no output of a revoked partition is issued after
        # this returns; queued work for these partitions is skipped by the liveness checks.
        with self._sink_lock:
            dropped = self._tracker.release(keys)
        if dropped:
            log.info(
                "dropped %d in-flight records of revoked partitions (the new owner reprocesses them)", dropped
            )

    # -- health and shutdown ---------------------------------------------------------------------------
    def _is_live(self) -> bool:
        return self._fatal is None and all(thread.is_alive() for thread in self._threads)

    def _health_problem(self) -> BaseException | None:
        if self._fatal is not None:
            return self._fatal
        if self._consumer.error is not None:
            return self._consumer.error
        if not self._consumer.alive:
            return LineguardError("the poll thread stopped")
        if not all(thread.is_alive() for thread in self._threads):
            return LineguardError("a pipeline thread stopped")
        return None

    def _fail(self, error: BaseException) -> None:
        if self._fatal is None:
            self._fatal = error

    def _guarded(self, target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                log.exception("%s failed", threading.current_thread().name)
                self._fail(exc)
                self._stop.set()

        return run

    def _release_partial_start(self) -> None:
        """Start-up failed (bad model, port in use, services down): close what was opened, quietly."""
        if self._health is not None:
            self._health.close()
        consumer: FrameConsumer | None = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()
        if self._mongo_client is not None:
            self._mongo_client.close()

    def _shutdown(self) -> bool:
        """Drain and close; True when every in-flight record finished and its offset was committed."""
        self._draining = True
        s = self.settings
        deadline = time.monotonic() + s.drain_timeout_s
        self._consumer.stop_polling()
        drained = False
        if self._fatal is None:
            drained = self._tracker.wait_until_done(None, s.drain_timeout_s)
            if not drained:
                log.warning(
                    "drain: %d records still in flight after %.0f s",
                    self._tracker.in_flight(),
                    s.drain_timeout_s,
                )
        # Stop the stages in pipeline order, so each one finishes what the previous one handed over.
        for done, thread in zip(
            (self._inference_done, self._sinks_done, self._mongo_done), self._threads, strict=False
        ):
            done.set()
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
        self._mongo_done.set()
        self._outputs.flush(max(1.0, deadline - time.monotonic()))
        committed: dict[PartitionKey, int] = {}
        if not s.exactly_once:
            committed = self._consumer.commit_done()
        self._consumer.set_revoke_timeout(0.0)  # closing revokes everything: nothing is left to wait for
        self._consumer.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._health is not None:
            self._health.close()
        if self._mongo_client is not None:
            self._mongo_client.close()
        log.info(
            "worker %s stopped (%s; committed %s)",
            s.worker_id,
            "drained" if drained else "not drained",
            ", ".join(f"{t}[{p}]={o}" for (t, p), o in sorted(committed.items())) or "nothing new",
        )
        return drained


def _deadline_stage(settings: WorkerSettings, metrics: WorkerMetrics) -> DeadlineStage | None:
    """The deadline stage when any line has a deadline (workers.deadline), else None (no checks at all)."""
    policy = DeadlinePolicy(settings.deadline_ms, settings.deadline_lines, settings.deadline_fail_safe)
    if not policy.enabled:
        return None
    stage = DeadlineStage(policy, metrics, settings.worker_id, settings.max_batch_size)
    metrics.on_result = stage.observe_result
    return stage


def _trace_id(message: Message) -> bytes | None:
    """The frame's trace context (its ``traceparent``, else its bare ``trace-id``), from which every output
    gets a child span (schemas/tracecontext.py); a hostile or broken value (e.g. 200 KB) is not carried,
    since it would make each result and event that large (possibly too large to produce)."""
    return carried_context(message.headers() or ())
