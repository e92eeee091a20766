"""The output stage: finished batches and rejected records -> results, events, documents, dead letters, and
the acknowledgements that let offsets be committed.

At least once (default): each record is *settled* with the number of outputs about to be issued (result,
optional event and MongoDB document; or one dead letter) before they are issued, and every delivery report or
MongoDB acknowledgement counts one down. Documents are written by :meth:`OutputWriter.mongo_loop` on a thread
of their own, several batches per insert, so results reach Kafka without waiting for the previous batch's
documents.

Exactly once: the outputs of several queue items and the consumer positions go into one Kafka
transaction. Their MongoDB documents are written *before* it begins (idempotent by ``_id``): a slow or
unreachable MongoDB, retried for tens of seconds, must never hold a transaction open past
``transaction.timeout.ms`` (the broker would abort it and fence the worker). A transaction that only needs an
abort (a rebalance moved the group's generation) is aborted and written again, without holding the lock a
revoke waits for, so the poll thread can release the revoked partitions and pick up the new generation
meanwhile; records of partitions revoked by then are left out (their new owner reads them again from the last
committed offset).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TopicPartition

from infra.sinks import Sink, write_through_backpressure
from schemas.records import DeadLetter, DeadLetterReason, DefectEvent, InspectionResult
from vision.outputs import Prediction
from workers.decode import DecodedFrame, FrameRejected
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker, Ticket
from workers.sinks.dead_letters import RawRecord, build_dead_letter
from workers.sinks.kafka import DeliveryFailed, KafkaOutputs, Output, OutputTooLarge, TransactionAborted
from workers.verdicts import ResultBuilder

log = logging.getLogger(__name__)

REBALANCE_RETRY_S = 60.0  # transactions refused by a rebalance are rewritten this long (> a rebalance)
ABORTED_ATTEMPTS = 3  # other aborted transactions (e.g. an output Kafka refused) are rewritten this often
MONGO_MAX_DOCUMENTS = 256  # documents of several batches written in one insert
MONGO_QUEUE_BATCHES = 4  # batches waiting for their documents before the output stage blocks


@dataclass(frozen=True, slots=True)
class InferredBatch:
    """A batch the model has run on."""

    frames: list[DecodedFrame]
    predictions: list[Prediction]
    inferred_at: datetime
    builder: ResultBuilder  # of the model that made the predictions


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that goes to the dead-letter topic."""

    ticket: Ticket
    record: RawRecord
    error: FrameRejected


SinkItem = InferredBatch | Rejected

Written = list[tuple[Ticket, InspectionResult]]


@dataclass(frozen=True, slots=True)
class _FrameOutputs:
    ticket: Ticket
    result: InspectionResult
    event: DefectEvent | None
    result_out: Output  # serialized, size checked
    event_out: Output | None


@dataclass(frozen=True, slots=True)
class _LetterOutput:
    ticket: Ticket
    letter: DeadLetter


class OutputWriter:
    """Writes the outputs of queue items; one caller thread (the sink thread), plus the MongoDB thread."""

    def __init__(
        self,
        tracker: OffsetTracker,
        outputs: KafkaOutputs,
        documents: Sink[InspectionResult] | Sequence[Sink[InspectionResult]],
        metrics: WorkerMetrics,
        *,
        worker_id: str,
        max_message_bytes: int,
        group_metadata: Callable[[], Any],
        rebalance_retry_s: float = REBALANCE_RETRY_S,
    ) -> None:
        self._tracker = tracker
        self._outputs = outputs
        # Document sinks (MongoDB first; e.g. a shadow or PostgreSQL sink next), composed in workers.assemble:
        # a record is acknowledged once every one of them took its document.
        self._documents: list[Sink[InspectionResult]] = (
            [documents] if isinstance(documents, Sink) else list(documents)
        )
        self._metrics = metrics
        self._worker_id = worker_id
        self._max_message_bytes = max_message_bytes
        self._group_metadata = group_metadata
        self._rebalance_retry_s = rebalance_retry_s
        # Exactly once: records whose offsets cannot be committed yet (an earlier record of their partition is
        # still on its way), carried into the next transaction.
        self._deferred_frames: list[_FrameOutputs] = []
        self._deferred_letters: list[_LetterOutput] = []
        self._mongo_queue: queue.Queue[Written] = queue.Queue(maxsize=MONGO_QUEUE_BATCHES)

    # -- at least once ---------------------------------------------------------------------------------
    def write(self, item: SinkItem, give_up: Callable[[], bool]) -> None:
        """Settle each record, issue its outputs; acknowledgements count down as they arrive.

        ``give_up`` says the worker is stopping or failed: a batch whose documents cannot be queued is then
        left unfinished (not committed, so read again) rather than blocking forever.
        """
        if isinstance(item, Rejected):
            self._send_letter(_LetterOutput(item.ticket, self._dead_letter(item)))
            return
        written: Written = []
        for output in self._encoded(item):
            if isinstance(output, _LetterOutput):  # an output too large to produce: a dead letter instead
                self._send_letter(output)
                continue
            if not self._tracker.settle(output.ticket, outstanding=2 + (output.event is not None)):
                continue  # partition revoked meanwhile
            self._outputs.send(output.result_out, ack=self._result_acker(output.ticket, output.result))
            if output.event_out is not None:
                self._outputs.send(output.event_out, ack=self._acker(output.ticket))
                self._metrics.defect_events.inc()
            written.append((output.ticket, output.result))
        while written and not give_up():
            try:
                self._mongo_queue.put(written, timeout=0.1)
                return
            except queue.Full:
                self._outputs.serve(0)

    def mongo_loop(self, done: threading.Event) -> None:
        """Write the documents of written batches, in bulk, and acknowledge them; returns once ``done`` is set
        and nothing is left."""
        while True:
            try:
                pending = self._mongo_queue.get(timeout=0.05)
            except queue.Empty:
                if done.is_set():
                    return
                continue
            while len(pending) < MONGO_MAX_DOCUMENTS:
                try:
                    pending = pending + self._mongo_queue.get_nowait()
                except queue.Empty:
                    break
            self._write_documents([result for _, result in pending])
            for ticket, _ in pending:
                self._tracker.ack(ticket)

    def raise_on_delivery_failure(self) -> None:
        failure = self._outputs.failure
        if failure is not None:
            raise DeliveryFailed(f"an output was not delivered: {failure.str()}")

    # -- exactly once ----------------------------------------------------------------------------------
    def write_transaction(
        self, items: list[SinkItem], lock: threading.Lock, give_up: Callable[[], bool]
    ) -> None:
        """Documents of ``items``, then their outputs and the consumer positions in one transaction.

        Each attempt runs under ``lock`` (a revoke takes it to release its partitions). An aborted attempt is
        rewritten, after a pause outside the lock, with the records still live: for up to
        ``rebalance_retry_s`` when a rebalance refused it, else :data:`ABORTED_ATTEMPTS` times. ``give_up``
        (the worker is stopping) leaves the records uncommitted instead: they are read again.

        A record only goes into a transaction whose offsets cover it: the decode pool may hand a partition's
        records over out of order, and a committed output whose offset is not committed would be written
        again after a crash (a duplicate under ``read_committed``). Such records wait for the next call.
        """
        frames: list[_FrameOutputs] = []
        letters: list[_LetterOutput] = []
        for item in items:
            if isinstance(item, Rejected):
                letters.append(_LetterOutput(item.ticket, self._dead_letter(item)))
                continue
            for output in self._encoded(item):
                if isinstance(output, _LetterOutput):
                    letters.append(output)
                else:
                    frames.append(output)
        self._write_documents([f.result for f in frames if self._tracker.is_live(f.ticket)])
        frames = self._deferred_frames + frames
        letters = self._deferred_letters + letters
        self._deferred_frames, self._deferred_letters = [], []
        deadline = time.monotonic() + self._rebalance_retry_s
        attempt = 1
        while True:
            with lock:
                try:
                    self._deferred_frames, self._deferred_letters = self._transaction(frames, letters)
                    return
                except TransactionAborted as exc:
                    if exc.group_changed and time.monotonic() >= deadline:
                        raise
                    if not exc.group_changed and attempt >= ABORTED_ATTEMPTS:
                        raise
                    log.warning("transaction aborted (%s); writing it again (attempt %d)", exc, attempt + 1)
            if give_up():
                log.warning("stopping: %d aborted records left uncommitted", len(frames) + len(letters))
                return
            # Outside the lock: a rebalance's revoke releases its partitions and the poll thread reads the
            # group's new generation before the next attempt.
            time.sleep(min(2.0, 0.2 * attempt))
            attempt += 1

    def _transaction(
        self, frames: list[_FrameOutputs], letters: list[_LetterOutput]
    ) -> tuple[list[_FrameOutputs], list[_LetterOutput]]:
        """One transaction of the live records its offsets cover; returns the records left for later."""
        live_frames = [f for f in frames if self._tracker.is_live(f.ticket)]
        live_letters = [letter for letter in letters if self._tracker.is_live(letter.ticket)]
        # The positions there will be once these records are done: a record at or past its partition's
        # position follows a gap (an earlier record not written yet) and waits.
        positions = self._tracker.positions_if_done(
            [f.ticket for f in live_frames] + [letter.ticket for letter in live_letters]
        )

        def covered(ticket: Ticket) -> bool:
            return ticket.offset < positions.get(ticket.key, -1)

        deferred_frames = [f for f in live_frames if not covered(f.ticket)]
        deferred_letters = [letter for letter in live_letters if not covered(letter.ticket)]
        live_frames = [f for f in live_frames if covered(f.ticket)]
        live_letters = [letter for letter in live_letters if covered(letter.ticket)]
        tickets = [f.ticket for f in live_frames] + [letter.ticket for letter in live_letters]
        if not tickets:  # revoked partitions (their new owner writes them) or records behind gaps
            return deferred_frames, deferred_letters
        self._outputs.begin()
        try:
            for letter in live_letters:
                self._outputs.dead_letter(letter.letter, ack=None)
            for output in live_frames:
                self._outputs.send(output.result_out, ack=None)
                if output.event_out is not None:
                    self._outputs.send(output.event_out, ack=None)
            # Offsets go in before the commit; the records only count as done once it succeeded.
            offsets = [
                TopicPartition(topic, partition, offset) for (topic, partition), offset in positions.items()
            ]
            self._outputs.commit(offsets, self._group_metadata())
        except BaseException:
            self._outputs.abort()
            raise
        for ticket in tickets:
            self._tracker.settle(ticket, outstanding=0)
        self._tracker.mark_committed(positions)
        now = datetime.now(UTC)
        for letter in live_letters:
            self._metrics.dead_letters.labels(letter.letter.reason.value).inc()
        for output in live_frames:
            self._count_result(output.result, now)
            if output.event is not None:
                self._metrics.defect_events.inc()
        return deferred_frames, deferred_letters

    # -- shared ----------------------------------------------------------------------------------------
    def _write_documents(self, results: list[InspectionResult]) -> None:
        """Every document sink takes ``results``, each waiting through its backpressure (writes are
        idempotent, so a batch offered again is never a duplicate); a sink that gives up raises."""
        started = time.perf_counter()
        for sink in self._documents if results else ():
            write_through_backpressure(sink, results)
        self._metrics.stage_seconds.labels("mongo").observe(time.perf_counter() - started)

    def _build(self, batch: InferredBatch) -> list[tuple[DecodedFrame, InspectionResult, DefectEvent | None]]:
        size = len(batch.frames)
        built = []
        for frame, prediction in zip(batch.frames, batch.predictions, strict=True):
            result, event = batch.builder.build(frame, prediction, batch.inferred_at, size)
            built.append((frame, result, event))
        return built

    def _encoded(self, batch: InferredBatch) -> list[_FrameOutputs | _LetterOutput]:
        """Each frame's outputs serialized, their sizes checked before anything is produced: a frame with an
        output the producer would refuse becomes one OVERSIZE dead letter (no result, event or document)."""
        encoded: list[_FrameOutputs | _LetterOutput] = []
        for frame, result, event in self._build(batch):
            try:
                result_out = self._outputs.encode_result(result, frame.trace_id)
                event_out = None if event is None else self._outputs.encode_event(event, frame.trace_id)
            except OutputTooLarge as exc:
                encoded.append(_LetterOutput(frame.ticket, self._oversize_letter(frame, exc)))
                continue
            encoded.append(_FrameOutputs(frame.ticket, result, event, result_out, event_out))
        return encoded

    def _oversize_letter(self, frame: DecodedFrame, exc: OutputTooLarge) -> DeadLetter:
        source = frame.source
        log.warning(
            "dead letter OVERSIZE from %s[%d]@%d: %s", source.topic, source.partition, source.offset, exc
        )
        record = RawRecord(
            source.topic, source.partition, source.offset, None, frame.frame.camera_id.encode(), None
        )
        message = (
            f"{exc}; frame {frame.frame.camera_id}#{frame.frame.frame_number} got no result, defect event "
            "or inspection document"
        )
        return build_dead_letter(
            record,
            DeadLetterReason.OVERSIZE,
            type(exc).__name__,
            message,
            self._worker_id,
            max_bytes=self._max_message_bytes,
        )

    def _send_letter(self, output: _LetterOutput) -> None:
        if self._tracker.settle(output.ticket, outstanding=1):
            self._outputs.send(
                self._outputs.encode_dead_letter(output.letter), ack=self._acker(output.ticket)
            )
            self._metrics.dead_letters.labels(output.letter.reason.value).inc()

    def _dead_letter(self, item: Rejected) -> DeadLetter:
        log.warning(
            "dead letter %s from %s[%d]@%d: %s",
            item.error.reason.value,
            item.record.topic,
            item.record.partition,
            item.record.offset,
            item.error,
        )
        return build_dead_letter(
            item.record,
            item.error.reason,
            item.error.error_class,
            str(item.error),
            self._worker_id,
            max_bytes=self._max_message_bytes,
        )

    def _acker(self, ticket: Ticket) -> Callable[[], None]:
        tracker = self._tracker
        return lambda: tracker.ack(ticket)

    def _result_acker(self, ticket: Ticket, result: InspectionResult) -> Callable[[], None]:
        def ack() -> None:
            self._tracker.ack(ticket)
            self._count_result(result, datetime.now(UTC))

        return ack

    def _count_result(self, result: InspectionResult, now: datetime) -> None:
        self._metrics.count_result(result, now)  # totals and the per-line series (workers.metrics)
