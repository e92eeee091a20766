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

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import Message

from infra.endpoints import Endpoints
from infra.settings import KafkaSettings, MongoSettings
from schemas.errors import LineguardError, ServiceUnavailableError
from workers.assemble import Assembler, Clients, Hooks, WorkerParts, assemble
from workers.backends import LoadedModel
from workers.deadline import DeadlinePolicy
from workers.deadline_stage import DeadlineStage
from workers.decode import DecodedFrame
from workers.decode_stage import DecodeStage
from workers.decode_stage import trace_id as _trace_id
from workers.inference_stage import InferenceStage
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker, PartitionKey, Ticket
from workers.serving import Serving, default_model_path
from workers.settings import WorkerSettings
from workers.sinks.writer import InferredBatch, Rejected, SinkItem

__all__ = ["InferredBatch", "Rejected", "Worker", "_trace_id", "default_model_path"]

log = logging.getLogger(__name__)

_SINK_QUEUE_BATCHES = 4  # batches waiting for the sink thread before inference blocks
_TRANSACTION_MAX_ITEMS = 16  # queue items coalesced into one transaction


class Worker:
    """A complete worker. ``run()`` blocks until :meth:`stop` (or a fatal error) and returns an exit code.

    Usable in-process (tests, the demo, benchmarks: ``run()`` on a thread, ``stop()`` from another) or as the
    body of ``lineguard worker`` / ``python -m workers``. Its parts are built by
    :func:`workers.assemble.assemble` when ``run()`` starts: ``clients`` replaces the Kafka and MongoDB
    clients (e.g. with stand-ins), ``assembler`` the whole composition root.
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
        clients: Clients | None = None,
        assembler: Assembler | None = None,
    ) -> None:
        self.settings = settings
        self._accept = accept
        self._model = model
        self.metrics = metrics if metrics is not None else WorkerMetrics(role=settings.role)
        self._deadline = _deadline_stage(settings, self.metrics)
        self._tracker = OffsetTracker()
        self._assemble: Assembler = (
            assembler
            if assembler is not None
            else functools.partial(
                assemble,
                settings,
                tracker=self._tracker,
                metrics=self.metrics,
                deadline=self._deadline,
                kafka=kafka if kafka is not None else KafkaSettings(),
                mongo=mongo if mongo is not None else MongoSettings(),
                endpoints=endpoints,
                model=model,
                clients=clients,
            )
        )
        self._stop = threading.Event()
        self._started = threading.Event()
        self._fatal: BaseException | None = None
        self._draining = False
        self._decoded: queue.Queue[DecodedFrame] = queue.Queue()
        self._sink_queue: queue.Queue[SinkItem] = queue.Queue(maxsize=_SINK_QUEUE_BATCHES)
        self._inference_done = threading.Event()
        self._sinks_done = threading.Event()
        self._mongo_done = threading.Event()
        self._sink_lock = threading.Lock()  # a revoke waits for the write (transaction) in progress
        self._threads: list[threading.Thread] = []
        self._parts: WorkerParts | None = None  # built by run()
        self._stage: DecodeStage | None = None
        self._serving: Serving | None = None  # the model served now (swapped by the inference thread)

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
        return self._parts.consumer.assignment if self._started.is_set() and self._parts else set()

    @property
    def ready(self) -> bool:
        parts = self._parts
        return (
            self._started.is_set()
            and parts is not None
            and not self._draining
            and self._fatal is None
            and parts.consumer.alive
        )

    def run(self) -> int:
        """Start, serve until stopped, drain; 0 = clean exit, 1 = stopped by an error."""
        hooks = Hooks(self._intake, self, self._is_live, lambda: self.ready, self._stop)
        try:
            parts = self._assemble(hooks)  # closes what it opened if it fails
        except ServiceUnavailableError:
            if self._stop.is_set():  # SIGTERM while waiting for a service: nothing was consumed, a clean stop
                log.info("worker stopped before it started")
                return 0
            raise
        try:
            self._start(parts)
        except BaseException:
            parts.close()
            raise
        try:
            while not self._stop.wait(0.2):
                problem = self._health_problem(parts)
                if problem is not None:
                    self._fail(problem)
                    break
        finally:
            clean = self._shutdown(parts)
        if self._fatal is not None:
            log.error("worker stopped by an error: %s", self._fatal)
            return 1
        return 0 if clean else 1

    # -- start -----------------------------------------------------------------------------------------
    def _start(self, parts: WorkerParts) -> None:
        s = self.settings
        self._stage = DecodeStage(
            parts.serving,
            self._tracker,
            self.metrics,
            self._deadline,
            accept=self._accept,
            decoded=self._decoded,
            to_sinks=self._to_sinks,
            fail=self._fail,
            stop=self._stop,
        )
        inference = InferenceStage(
            parts.serving,
            parts.models,
            self._tracker,
            self.metrics,
            self._deadline,
            max_batch_size=s.max_batch_size,
            max_wait_ms=s.max_wait_ms,
            decoded=self._decoded,
            sink_queue=self._sink_queue,
            done=self._inference_done,
            swapped=self._use,
        )
        self._parts = parts
        self._use(parts.serving)
        stages = [(inference.run, "worker-inference"), (self._sink_loop, "worker-sinks")]
        if not s.exactly_once:  # with transactions the documents are written inside each transaction
            stages.append((lambda: parts.writer.mongo_loop(self._mongo_done), "worker-mongo"))
        for target, name in stages:
            thread = threading.Thread(target=self._guarded(target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        parts.consumer.start()
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

    def _use(self, serving: Serving) -> None:
        """Serve this model from the next batch on (the decode pool picks it up for the next record)."""
        self._serving = serving
        self._model = serving.model
        if self._stage is not None:
            self._stage.serving = serving
        meta = serving.model.metadata
        self.metrics.model.info(
            {
                "name": meta.name,
                "version": meta.version,
                "task": meta.task.value,
                "backend": serving.model.backend.name,
            }
        )

    # -- poll thread -----------------------------------------------------------------------------------
    def _intake(self, message: Message, ticket: Ticket) -> None:
        if self._deadline is not None:
            self._deadline.admit(ticket, message.timestamp()[1])
        assert self._parts is not None and self._stage is not None  # the consumer starts after both
        self._parts.pool.submit(self._stage.decode, message, ticket, datetime.now(UTC))

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

    @property
    def _built(self) -> WorkerParts:
        assert self._parts is not None, "used before run() built the parts"
        return self._parts

    # -- sink thread -----------------------------------------------------------------------------------
    def _sink_loop(self) -> None:
        while True:
            try:
                items = [self._sink_queue.get(timeout=0.05)]
            except queue.Empty:
                self._built.outputs.serve(0)
                self._built.writer.raise_on_delivery_failure()
                if self._sinks_done.is_set():
                    return
                continue
            while len(items) < _TRANSACTION_MAX_ITEMS:
                try:
                    items.append(self._sink_queue.get_nowait())
                except queue.Empty:
                    break
            # Thresholds may be edited while the worker runs: re-read between batches (a stat if unchanged).
            assert self._serving is not None  # set before the threads start
            self._serving.builder.refresh_thresholds()
            started = time.perf_counter()
            if self.settings.exactly_once:  # takes the lock per attempt: a revoke may come between attempts
                self._built.writer.write_transaction(items, self._sink_lock, give_up=self._sinks_done.is_set)
            else:
                with self._sink_lock:
                    for item in items:
                        self._built.writer.write(item, give_up=self._giving_up)
            self.metrics.stage_seconds.labels("sinks").observe(time.perf_counter() - started)
            self._built.outputs.serve(0)
            self._built.writer.raise_on_delivery_failure()

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

    def _health_problem(self, parts: WorkerParts) -> BaseException | None:
        if self._fatal is not None:
            return self._fatal
        if parts.consumer.error is not None:
            return parts.consumer.error
        if not parts.consumer.alive:
            return LineguardError("the poll thread stopped")
        if not all(thread.is_alive() for thread in self._threads):
            return LineguardError("a pipeline thread stopped")
        return None

    def _fail(self, error: BaseException) -> None:
        if self._fatal is None:
            self._fatal = error

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                log.exception("%s failed", threading.current_thread().name)
                self._fail(exc)
                self._stop.set()

        return run

    def _shutdown(self, parts: WorkerParts) -> bool:
        """Drain and close; True when every in-flight record finished and its offset was committed."""
        self._draining = True
        s = self.settings
        deadline = time.monotonic() + s.drain_timeout_s
        parts.consumer.stop_polling()
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
        parts.outputs.flush(max(1.0, deadline - time.monotonic()))
        committed: dict[PartitionKey, int] = {}
        if not s.exactly_once:
            committed = parts.consumer.commit_done()
        parts.consumer.set_revoke_timeout(0.0)  # closing revokes everything: nothing is left to wait for
        parts.close()  # leaves the group, stops the pool, closes the health server and MongoDB
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
