"""The inference thread: decoded frames -> dynamic batches -> the model -> the sink queue.

Between batches (and while idle) it follows the registry's production alias (:class:`~workers.serving
.ModelSource`); a swapped model serves from the next batch on, and frames decoded for the previous one are
preprocessed again. With a decision deadline, frames already late get their fail-safe result from
:class:`~workers.deadline_stage.DeadlineStage` instead of a slot in the batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from workers.batcher import Batch, DynamicBatcher
from workers.deadline_stage import DeadlineStage
from workers.decode import DecodedFrame
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker
from workers.serving import ModelSource, Serving
from workers.sinks.writer import InferredBatch, SinkItem


class InferenceStage:
    """Runs :meth:`run` on one thread until ``done`` is set and nothing decoded is left."""

    def __init__(
        self,
        serving: Serving,
        models: ModelSource,
        tracker: OffsetTracker,
        metrics: WorkerMetrics,
        deadline: DeadlineStage | None,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        decoded: queue.Queue[DecodedFrame],
        sink_queue: queue.Queue[SinkItem],
        done: threading.Event,
        swapped: Callable[[Serving], None],
    ) -> None:
        self.serving = serving
        self._models = models
        self._tracker = tracker
        self._metrics = metrics
        self._deadline = deadline
        self._max_batch_size = max_batch_size
        self._max_wait_ms = max_wait_ms
        self._decoded = decoded
        self._sink_queue = sink_queue
        self._done = done
        self._swapped = swapped  # tells the worker (decode pool, sink thread, metrics) about a new model

    def run(self) -> None:
        batcher: DynamicBatcher[DecodedFrame] = DynamicBatcher(self._max_batch_size, self._max_wait_ms)
        while True:
            batch = self._next_batch(batcher)
            if batch is not None:
                self._infer(batch)
            # Between batches (and while idle): follow the registry's production alias; the watcher reads
            # the registry at most once a second, otherwise this is a clock read.
            swapped = self._models.poll()
            if swapped is not None:
                self.serving = swapped
                self._swapped(swapped)
            if batch is None and self._done.is_set() and self._decoded.empty() and not len(batcher):
                return

    def _next_batch(self, batcher: DynamicBatcher[DecodedFrame]) -> Batch[DecodedFrame] | None:
        wait = batcher.time_until_due()
        try:
            item = self._decoded.get(timeout=0.05 if wait is None else min(wait, 0.05))
        except queue.Empty:
            batch = batcher.due()
            if batch is None and self._done.is_set():
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
        serving = self.serving
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
        self._metrics.stage_seconds.labels("inference").observe(seconds)
        if self._deadline is not None:
            self._deadline.observe_batch(len(frames), seconds)
        self._metrics.batch_size.observe(len(frames))
        self._sink_queue.put(InferredBatch(frames, predictions, datetime.now(UTC), serving.builder))
