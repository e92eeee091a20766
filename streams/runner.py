"""The camera loop: capture -> encode -> publish, at a steady rate, until a count, the end of the source, or a
signal; then flush with a timeout and account for every frame.

Exit codes (:attr:`RunSummary.exit_code`): 0 when every published frame was delivered or is safely in the
spool (also after SIGINT/SIGTERM, which are a normal way to stop a camera); 1 when any frame was lost:
delivery failed for good, refused as too large, its claim-check store unreachable, still undelivered when the
flush timeout ran out, dropped by the spool's ``drop-oldest`` policy (a full spool or a full disk: the
policy trades old frames for new ones, but each is still a frame nobody inspects), quarantined as a damaged
spool file, or refused by the disk. The summary line says ``lost N`` with the breakdown.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from schemas.errors import FrameTooLargeError, ServiceUnavailableError
from schemas.records import Frame
from streams.encoder import FrameEncoder
from streams.publisher import CloseReport, PublisherStats
from streams.sources.base import FrameSource, SourceStats

logger = logging.getLogger(__name__)


class RateLimiter:
    """Paces frames at ``fps`` (0 = no pacing) on a fixed schedule, so small delays do not accumulate into
    drift; a caller that falls more than one period behind restarts the schedule instead of bursting."""

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        if fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.period_s = 1.0 / fps if fps > 0 else 0.0
        self._clock = clock
        self._next_at: float | None = None

    def wait_time(self) -> float:
        """Seconds to wait before the next frame may go; books that frame's slot."""
        if self.period_s == 0.0:
            return 0.0
        now = self._clock()
        if self._next_at is None or now - self._next_at > self.period_s:
            self._next_at = now
        wait = max(0.0, self._next_at - now)
        self._next_at += self.period_s
        return wait


class Publisher(Protocol):
    """What the runner needs from :class:`streams.publisher.FramePublisher`."""

    stats: PublisherStats

    def publish(self, frame: Frame) -> None: ...

    def poll(self, timeout_s: float = 0.0) -> None: ...

    def request_stop(self) -> None: ...

    def close(self, timeout_s: float = 10.0) -> CloseReport: ...

    @property
    def spool_backlog(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for the live progress line."""

    elapsed_s: float
    captured: int
    publisher: PublisherStats
    source: SourceStats
    spool_backlog: int

    @property
    def fps(self) -> float:
        return self.publisher.published / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.publisher.delivered_bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        p = self.publisher
        parts = [
            f"frames {p.published}",
            f"{self.fps:.1f} fps",
            f"{self.mb_per_s:.2f} MB/s",
            f"delivered {p.delivered}",
            f"failed {p.failed}",
            f"spooled {self.spool_backlog}",
        ]
        if p.too_large:
            parts.append(f"too large {p.too_large}")
        if p.claim_checked:
            parts.append(f"claim-checked {p.claim_checked}")
        if p.claim_check_failed:
            full = f" (store full {p.claim_check_full})" if p.claim_check_full else ""
            parts.append(f"claim-check failed {p.claim_check_failed}{full}")
        if p.spool_dropped:
            parts.append(f"dropped {p.spool_dropped}")
        if p.spool_quarantined:
            parts.append(f"quarantined {p.spool_quarantined}")
        if self.source.skipped:
            parts.append(f"skipped {self.source.skipped}")
        if self.source.reconnects:
            parts.append(f"reconnects {self.source.reconnects}")
        return " | ".join(parts)


@dataclass(frozen=True, slots=True)
class RunSummary:
    captured: int
    publisher: PublisherStats
    source: SourceStats
    close: CloseReport
    stopped_by_signal: bool

    @property
    def lost(self) -> int:
        """Every frame that will not be delivered: the exit code is 1 as soon as this is not 0."""
        p = self.publisher
        dropped = p.spool_dropped + p.spool_quarantined
        return self.close.failed + self.close.undelivered + p.too_large + p.claim_check_failed + dropped

    @property
    def exit_code(self) -> int:
        return 0 if self.lost == 0 else 1

    def describe(self) -> str:
        c = self.close
        p = self.publisher
        text = (
            f"{p.published} frames published: {c.delivered} delivered, "
            f"{c.in_spool} in the spool, {c.failed} failed, {c.undelivered} undelivered at shutdown, "
            f"{p.too_large} too large"
        )
        if p.claim_check_failed:
            text += f", {p.claim_check_failed} lost to an unreachable claim-check store"
        if p.spool_dropped:
            text += f", {p.spool_dropped} dropped from a full spool (drop-oldest)"
        if p.spool_quarantined:
            text += f", {p.spool_quarantined} damaged spool files quarantined"
        if p.spool_write_errors:
            text += f", {p.spool_write_errors} refused by the disk (counted in failed)"
        if self.source.skipped:
            text += f"; {self.source.skipped} unreadable inputs skipped"
        return f"{text}; lost {self.lost}"


class CameraRunner:
    """Runs one camera: ``run()`` blocks until done; ``stop()`` (signal-safe) ends it cleanly."""

    def __init__(
        self,
        source: FrameSource,
        encoder: FrameEncoder,
        publisher: Publisher,
        fps: float = 0.0,
        count: int = 0,
        close_timeout_s: float = 10.0,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.source = source
        self.encoder = encoder
        self.publisher = publisher
        self.count = count
        self.close_timeout_s = close_timeout_s
        self._limiter = RateLimiter(fps, clock)
        self._on_progress = on_progress
        self._progress_interval_s = progress_interval_s
        self._clock = clock
        self._stopping = False
        self._stopped_by_signal = False

    def stop(self, by_signal: bool = False) -> None:
        """Finish after the current frame. Safe to call from a signal handler."""
        self._stopping = True
        self._stopped_by_signal = self._stopped_by_signal or by_signal
        self.source.close()
        self.publisher.request_stop()

    def run(self) -> RunSummary:
        started = self._clock()
        next_progress = started
        captured = 0
        frames = iter(self.source)
        try:
            while not self._stopping:
                # Wait for the frame's slot *before* taking it from the source: a frame taken first and then
                # held for its slot would carry a capture time up to one period old (100 ms at 10 fps), all
                # of it counted as pipeline latency downstream.
                self._wait(self._limiter.wait_time())
                if self._stopping:
                    break
                frame = next(frames, None)
                if frame is None or self._stopping:
                    break
                captured += 1
                try:
                    self.publisher.publish(self.encoder.encode(frame))
                except (FrameTooLargeError, ServiceUnavailableError) as exc:
                    # Only this frame is lost (counted by the publisher); one line each: it was not inspected.
                    logger.error("%s", exc)
                now = self._clock()
                if self._on_progress is not None and now >= next_progress:
                    next_progress = now + self._progress_interval_s
                    self._on_progress(self._progress(now - started, captured))
                if self.count and captured >= self.count:
                    break
        finally:
            self.source.close()
            report = self.publisher.close(self.close_timeout_s)
        if self._on_progress is not None:
            self._on_progress(self._progress(self._clock() - started, captured))
        return RunSummary(
            captured=captured,
            publisher=self.publisher.stats,
            source=self.source.stats,
            close=report,
            stopped_by_signal=self._stopped_by_signal,
        )

    def _wait(self, seconds: float) -> None:
        """Sleep until the next frame's slot while serving delivery callbacks and the spool."""
        if seconds <= 0:
            return  # publish() polls after every frame anyway
        deadline = self._clock() + seconds
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0 or self._stopping:
                self.publisher.poll(0)
                return
            self.publisher.poll(min(remaining, 0.1))

    def _progress(self, elapsed_s: float, captured: int) -> Progress:
        return Progress(
            elapsed_s=elapsed_s,
            captured=captured,
            publisher=self.publisher.stats,
            source=self.source.stats,
            spool_backlog=self.publisher.spool_backlog,
        )


def install_stop_signals(runner: CameraRunner) -> Callable[[], None]:
    """SIGINT/SIGTERM stop the runner cleanly; a second one interrupts at once. Returns an undo function."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.warning("%s: flushing and stopping (send it again to abort)", signal.Signals(signum).name)
        for sig in previous:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        runner.stop(by_signal=True)

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
