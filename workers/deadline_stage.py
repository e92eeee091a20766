"""The worker's deadline stage: where the pipeline asks whether a frame can still make its line's deadline,
and the fail-safe result of one that cannot (see :mod:`workers.deadline` for the policy and the estimates).

Three checks, cheapest first, each deciding a late frame fail-safe at once (no image decode, no model):

1. in the decode pool, on the record alone (Avro, no pixels): a frame read from a backlog is usually late
   already;
2. after decoding (decode itself took time);
3. when the inference thread closes a batch, with the estimated model + output time of that batch.

The poll loop also asks :meth:`DeadlineStage.hold` before taking more records: while the oldest admitted
frame is about to miss, partitions stay paused and the backlog waits in Kafka.

Fail-safe results go through the normal output stage as an :class:`~workers.sinks.writer.InferredBatch`
whose builder is a :class:`FailSafeBuilder`: exactly one result per frame, committed like any other, with
``deadline_missed`` set and no defect event (there is no region to report).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import UTC, datetime

import numpy as np

from schemas.records import Frame, InspectionResult, KafkaCoordinates, Verdict
from vision.outputs import Prediction
from workers.deadline import AdmissionWindow, DeadlinePolicy, ServiceEstimate
from workers.decode import DecodedFrame
from workers.metrics import WorkerMetrics
from workers.offsets import Ticket
from workers.sinks.writer import InferredBatch
from workers.verdicts import ResultBuilder, frame_result

log = logging.getLogger(__name__)

_NO_PIXELS = np.zeros((1, 1, 3), dtype=np.uint8)
_NO_PREDICTION = Prediction(class_scores={}, detections=(), anomaly_score=None, mask=None, defect_score=0.0)


class FailSafeBuilder(ResultBuilder):
    """Builds the fail-safe result of a late frame: the line's decision instead of the model's verdict."""

    def __init__(self, served: ResultBuilder, policy: DeadlinePolicy, worker_id: str) -> None:
        # Not ResultBuilder.__init__: nothing here looks at thresholds or pixels, only the model's identity.
        self.model_info = served.model_info
        self._policy = policy
        self._worker_id = worker_id

    def refresh_thresholds(self) -> None:
        return

    def build(
        self, decoded: DecodedFrame, prediction: Prediction, inferred_at: datetime, batch_size: int
    ) -> tuple[InspectionResult, None]:
        frame = decoded.frame
        budget = self._policy.budget_s(frame.line_id) or 0.0
        late_ms = ((inferred_at - frame.captured_at).total_seconds() - budget) * 1000
        reject = self._policy.fail_safe == "reject"
        result = frame_result(
            decoded,
            self.model_info,
            Verdict.DEFECT if reject else Verdict.OK,
            inferred_at,
            batch_size,
            self._worker_id,
            metadata={
                "fail_safe": self._policy.fail_safe,
                "deadline_ms": f"{budget * 1000:.0f}",
                # Negative: decided before the deadline because the model could not have finished in time.
                "late_ms": f"{late_ms:.0f}",
            },
            deadline_missed=True,
        )
        return result, None


class DeadlineStage:
    """The deadline checks of one worker (one instance, shared by its threads)."""

    def __init__(
        self, policy: DeadlinePolicy, metrics: WorkerMetrics, worker_id: str, max_batch_size: int
    ) -> None:
        tightest = policy.tightest_s()
        if tightest is None:
            raise ValueError("a deadline stage needs a policy with at least one deadline")
        self.policy = policy
        self._metrics = metrics
        self._worker_id = worker_id
        self._max_batch_size = max_batch_size
        self.estimate = ServiceEstimate(usual_size=max_batch_size)
        self.window = AdmissionWindow(tightest)
        self._marked: set[Ticket] = set()  # found late in the decode pool, decided with the next batch
        self._marked_lock = threading.Lock()

    # -- poll thread ---------------------------------------------------------------------------------
    def admit(self, ticket: Ticket, timestamp_ms: int | None) -> None:
        """A record taken in; ``timestamp_ms`` is its Kafka timestamp (about when it was captured)."""
        age = 0.0
        if timestamp_ms is not None and timestamp_ms > 0:
            age = datetime.now(UTC).timestamp() - timestamp_ms / 1000.0
        if age >= self.window.tightest_s:
            return  # late already (read from a backlog): decided fail-safe at once, it never waits
        self.window.enter(ticket)

    def hold(self) -> bool:
        """True while the poll loop must not take more records (the partitions stay paused)."""
        return self.window.hold(self.estimate.needed_s(self.estimate.usual_size()))

    # -- decode pool ---------------------------------------------------------------------------------
    def late(self, ticket: Ticket, frame: Frame, now: datetime | None = None) -> bool:
        """Whether the frame can no longer make it even if it were batched at once; records its deadline.
        Checked against the model time of a single frame (it may be batched with few others); the binding
        check is the batch's, in :meth:`split`."""
        remaining = self.policy.remaining_s(frame.line_id, frame.captured_at, now or datetime.now(UTC))
        if remaining is None:
            self.window.leave(ticket)  # its line has no deadline: it never holds the poll loop
            return False
        return remaining < self.estimate.needed_s(1)

    def mark_late(self, ticket: Ticket) -> None:
        """Found late before the batch: :meth:`split` decides it fail-safe whatever the estimate says."""
        self.window.leave(ticket)
        with self._marked_lock:
            self._marked.add(ticket)

    def done(self, ticket: Ticket) -> None:
        """The record left the window another way (dead letter, filtered out, revoked)."""
        self.window.leave(ticket)
        with self._marked_lock:
            self._marked.discard(ticket)

    # -- inference thread ----------------------------------------------------------------------------
    def split(
        self, frames: list[DecodedFrame], now: datetime | None = None
    ) -> tuple[list[DecodedFrame], list[DecodedFrame]]:
        """(to inspect, too late) for a batch about to run; both leave the admission window."""
        at = now or datetime.now(UTC)
        keep: list[DecodedFrame] = []
        late: list[DecodedFrame] = []
        # An estimate no batch confirmed lately is trusted less and less (and learns from the next batch).
        needed = self.estimate.needed_s(len(frames))
        for frame in frames:
            self.window.leave(frame.ticket)
            with self._marked_lock:
                marked = frame.ticket in self._marked
                self._marked.discard(frame.ticket)
            remaining = self.policy.remaining_s(frame.frame.line_id, frame.frame.captured_at, at)
            missed = marked or (remaining is not None and remaining < needed)
            (late if missed else keep).append(frame)
        return keep, late

    def observe_batch(self, size: int, seconds: float) -> None:
        self.estimate.observe_batch(size, seconds)

    def observe_result(self, result: InspectionResult, acknowledged_at: datetime) -> None:
        """Every acknowledged result, fail-safe ones too (same output path): its output time feeds the
        estimate."""
        self.estimate.observe_output((acknowledged_at - result.inferred_at).total_seconds())

    # -- fail-safe results ---------------------------------------------------------------------------
    def fail_safe(self, frames: list[DecodedFrame], served: ResultBuilder) -> InferredBatch:
        """The output-stage item that gives each late frame its fail-safe result."""
        for frame in frames:
            self.window.leave(frame.ticket)
            self._metrics.deadline_decided.labels(
                self._metrics.line_label(frame.frame.line_id), self.policy.fail_safe
            ).inc()
        return InferredBatch(
            frames=frames,
            predictions=[_NO_PREDICTION] * len(frames),
            inferred_at=datetime.now(UTC),
            builder=FailSafeBuilder(served, self.policy, self._worker_id),
        )


def undecoded(ticket: Ticket, frame: Frame, received_at: datetime, trace_id: bytes | None) -> DecodedFrame:
    """A frame decided before its pixels were decoded: the record's fields only."""
    return DecodedFrame(
        ticket=ticket,
        frame=dataclasses.replace(frame, image=b"") if frame.image else frame,
        source=KafkaCoordinates(topic=ticket.topic, partition=ticket.partition, offset=ticket.offset),
        image=_NO_PIXELS,
        tensor=_NO_PIXELS,
        received_at=received_at,
        ready_at=0.0,
        decode_seconds=0.0,
        trace_id=trace_id,
    )
