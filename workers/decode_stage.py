"""The decode pool's job: one consumed record -> a decoded frame for the batcher, or a dead letter.

Runs on the pool's threads (:mod:`workers.pipeline` submits each record). A record the worker cannot inspect
(poison, a bad claim check, an unexpected decoder error) becomes a :class:`~workers.sinks.writer.Rejected`
for the sink thread; a claim-check store that stays unreachable is not the record's fault, so it stops the
worker without committing the record (it is read again once the store is back). With a decision deadline, a
record that is already late is handed on undecoded (its fail-safe result is decided with the next batch).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

from confluent_kafka import Message

from schemas.errors import ServiceUnavailableError
from schemas.records import DeadLetterReason, Frame
from schemas.tracecontext import carried_context
from workers.deadline_stage import DeadlineStage, undecoded
from workers.decode import DecodedFrame, FrameDecoder, FrameRejected
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker, Ticket
from workers.serving import Serving
from workers.sinks.dead_letters import RawRecord
from workers.sinks.writer import Rejected, SinkItem

log = logging.getLogger(__name__)

STORE_ATTEMPTS = 4  # claim-check reads while MongoDB is unreachable, ~10 s each (server selection)


class DecodeStage:
    """Decodes records for the model being served (``serving``, swapped by the inference thread)."""

    def __init__(
        self,
        serving: Serving,
        tracker: OffsetTracker,
        metrics: WorkerMetrics,
        deadline: DeadlineStage | None,
        *,
        accept: Callable[[Message], bool] | None,
        decoded: queue.Queue[DecodedFrame],
        to_sinks: Callable[[SinkItem], None],
        fail: Callable[[BaseException], None],
        stop: threading.Event,
    ) -> None:
        self.serving = serving
        self._tracker = tracker
        self._metrics = metrics
        self._deadline = deadline
        # Which records to inspect (a shadow replay's range and line/camera filter); the others are done
        # with no output, so their offsets still advance. None: every record.
        self._accept = accept
        self._decoded = decoded
        self._to_sinks = to_sinks
        self._fail = fail
        self._stop = stop

    def decode(self, message: Message, ticket: Ticket, received_at: datetime) -> None:
        """One record, on a pool thread."""
        if self._accept is not None and not self._accept(message):
            self._deadline_done(ticket)
            self._tracker.settle(ticket, 0)
            return
        serving = self.serving
        try:
            frame: Frame | None = None
            if self._deadline is not None:
                frame = serving.decoder.read_frame(message.value())  # raises FrameRejected for poison
                if self._decided_late(frame, message, ticket, received_at):
                    return
            decoded = self._decode_retrying(serving.decoder, message, ticket, received_at, frame)
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
        self._metrics.stage_seconds.labels("decode").observe(decoded.decode_seconds)
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
        self._decoded.put(undecoded(ticket, frame, received_at, trace_id(message)))
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
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                trace = trace_id(message)
                if frame is not None:  # read already (the deadline check)
                    return decoder.decode_frame(frame, ticket, received_at, trace)
                return decoder.decode(message.value(), ticket, received_at, trace)
            except ServiceUnavailableError as exc:
                if attempt == STORE_ATTEMPTS or self._stop.is_set():
                    raise
                log.warning("claim-check store unreachable (%s); retrying %s", exc, ticket)
                time.sleep(attempt)
        raise AssertionError("unreachable")


def trace_id(message: Message) -> bytes | None:
    """The frame's trace context (its ``traceparent``, else its bare ``trace-id``), from which every output
    gets a child span (schemas/tracecontext.py); a hostile or broken value (e.g. 200 KB) is not carried,
    since it would make each result and event that large (possibly too large to produce)."""
    return carried_context(message.headers() or ())
