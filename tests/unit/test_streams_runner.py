"""Rate control with a fake clock, and the runner's loop, stop and accounting with fakes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from schemas.errors import FrameTooLargeError
from schemas.records import Frame
from streams.encoder import FrameEncoder
from streams.publisher import CloseReport, PublisherStats
from streams.runner import CameraRunner, Progress, RateLimiter
from streams.sources.base import CapturedFrame, SourceStats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spaces_frames_on_a_fixed_schedule() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock)
    assert limiter.wait_time() == 0.0  # the first frame goes at once
    clock.now += 0.03  # encoding and publishing took 30 ms
    assert limiter.wait_time() == pytest.approx(0.07)
    clock.now += 0.07 + 0.1  # slept to the slot, then the next frame took 100 ms: exactly on time
    assert limiter.wait_time() == pytest.approx(0.0)


def test_rate_limiter_does_not_burst_after_falling_behind() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock)
    limiter.wait_time()
    clock.now += 1.0  # a one-second stall (camera hiccup)
    assert limiter.wait_time() == 0.0
    assert limiter.wait_time() == pytest.approx(0.1)  # the schedule restarted: no catch-up burst


def test_rate_limiter_zero_fps_never_waits() -> None:
    limiter = RateLimiter(0.0, FakeClock())
    assert [limiter.wait_time() for _ in range(3)] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        RateLimiter(-1.0)


class ListSource:
    def __init__(self, frames: int) -> None:
        self.name = "list"
        self.stats = SourceStats()
        self.frames = frames
        self.closed = False

    def __iter__(self) -> Iterator[CapturedFrame]:
        for _ in range(self.frames):
            if self.closed:
                return
            self.stats.frames += 1
            yield CapturedFrame(datetime.now(UTC), np.zeros((8, 8, 3), dtype=np.uint8))

    def close(self) -> None:
        self.closed = True


class ClockedSource(ListSource):
    """Stamps each frame with the fake clock at the moment the runner takes it."""

    def __init__(self, frames: int, clock: FakeClock) -> None:
        super().__init__(frames)
        self.clock = clock
        self.taken_at: list[float] = []

    def __iter__(self) -> Iterator[CapturedFrame]:
        for frame in super().__iter__():
            self.taken_at.append(self.clock.now)
            yield frame


class RecordingPublisher:
    def __init__(self, clock: FakeClock, too_large_every: int = 0) -> None:
        self.stats = PublisherStats()
        self.frames: list[Frame] = []
        self.publish_times: list[float] = []
        self.clock = clock
        self.too_large_every = too_large_every
        self.stop_requested = False
        self.closed_with: float | None = None

    def publish(self, frame: Frame) -> None:
        if self.too_large_every and (len(self.frames) + self.stats.too_large + 1) % self.too_large_every == 0:
            self.stats.too_large += 1
            raise FrameTooLargeError("too large")
        self.frames.append(frame)
        self.publish_times.append(self.clock.now)
        self.stats.published += 1
        self.stats.delivered += 1

    def poll(self, timeout_s: float = 0.0) -> None:
        self.clock.now += timeout_s  # time passes while waiting, as with Producer.poll

    def request_stop(self) -> None:
        self.stop_requested = True

    def close(self, timeout_s: float = 10.0) -> CloseReport:
        self.closed_with = timeout_s
        return CloseReport(delivered=self.stats.delivered, failed=0, in_spool=0, undelivered=0)

    @property
    def spool_backlog(self) -> int:
        return 0


def _runner(
    frames: int, fps: float = 0.0, count: int = 0, too_large_every: int = 0
) -> tuple[CameraRunner, RecordingPublisher, list[Progress]]:
    clock = FakeClock()
    publisher = RecordingPublisher(clock, too_large_every)
    progress: list[Progress] = []
    runner = CameraRunner(
        ListSource(frames),
        FrameEncoder("cam", "line", "st", next_frame_number=0),
        publisher,
        fps=fps,
        count=count,
        close_timeout_s=3.0,
        on_progress=progress.append,
        clock=clock,
    )
    return runner, publisher, progress


def test_runs_until_the_source_ends_and_flushes() -> None:
    runner, publisher, progress = _runner(frames=5)
    summary = runner.run()
    assert [f.frame_number for f in publisher.frames] == [0, 1, 2, 3, 4]
    assert summary.captured == 5 and summary.exit_code == 0
    assert publisher.closed_with == 3.0
    assert progress[-1].publisher.published == 5


def test_count_stops_early() -> None:
    runner, publisher, _ = _runner(frames=100, count=7)
    assert runner.run().captured == 7
    assert len(publisher.frames) == 7


def test_fps_paces_publishing() -> None:
    runner, publisher, _ = _runner(frames=5, fps=4.0)
    runner.run()
    gaps = np.diff(publisher.publish_times)
    assert gaps == pytest.approx([0.25] * 4, abs=0.11)  # poll() advances the fake clock in <= 0.1 s steps
    assert publisher.publish_times[-1] - publisher.publish_times[0] >= 0.99


def test_a_paced_frame_is_captured_at_its_slot_not_held_for_it() -> None:
    # Taking a frame and then waiting for its slot would age its capture time by up to one period, all of it
    # reported downstream as pipeline latency.
    clock = FakeClock()
    publisher = RecordingPublisher(clock)
    source = ClockedSource(5, clock)
    CameraRunner(
        source, FrameEncoder("cam", "line", "st", next_frame_number=0), publisher, fps=4.0, clock=clock
    ).run()
    assert len(publisher.publish_times) == 5
    assert np.array(publisher.publish_times) - np.array(source.taken_at) == pytest.approx([0.0] * 5)
    assert np.diff(source.taken_at) == pytest.approx([0.25] * 4, abs=0.11)


def test_stop_finishes_cleanly_and_reports_a_signal() -> None:
    runner, publisher, _ = _runner(frames=100)
    original = publisher.publish

    def publish_then_stop(frame: Frame) -> None:
        original(frame)
        if len(publisher.frames) == 3:
            runner.stop(by_signal=True)

    publisher.publish = publish_then_stop  # type: ignore[method-assign]
    summary = runner.run()
    assert summary.captured == 3 and summary.stopped_by_signal and summary.exit_code == 0
    assert publisher.stop_requested
    assert publisher.closed_with == 3.0


def test_frames_refused_as_too_large_are_counted_and_fail_the_exit_code() -> None:
    runner, publisher, _ = _runner(frames=6, too_large_every=3)
    summary = runner.run()
    assert summary.captured == 6
    assert summary.publisher.too_large == 2 and len(publisher.frames) == 4
    assert summary.lost == 2 and summary.exit_code == 1
    assert "2 too large" in summary.describe()


def test_progress_line_shows_rates_and_counters() -> None:
    stats = PublisherStats(published=20, delivered=18, delivered_bytes=4_000_000, failed=1, spool_dropped=2)
    line = Progress(
        elapsed_s=2.0, captured=20, publisher=stats, source=SourceStats(skipped=3), spool_backlog=4
    ).line()
    assert "frames 20" in line and "10.0 fps" in line and "2.00 MB/s" in line
    assert "failed 1" in line and "spooled 4" in line and "dropped 2" in line and "skipped 3" in line


def test_librdkafka_lines_are_rate_limited_per_facility() -> None:
    import logging

    from streams.client_logs import RateLimitPerFacility

    clock = FakeClock()
    limit = RateLimitPerFacility(interval_s=30.0, clock=clock)

    def record(facility: str) -> logging.LogRecord:
        return logging.LogRecord(
            "x", logging.ERROR, "", 0, "%s [%s] %s", (facility, "rdkafka#1", "msg"), None
        )

    assert limit.filter(record("FAIL"))
    assert not limit.filter(record("FAIL"))  # the same kind again at once: suppressed
    assert limit.filter(record("ERROR"))  # another kind still shows
    clock.now += 31
    assert limit.filter(record("FAIL"))


def test_camera_metrics_are_read_from_the_counters_at_scrape_time() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from streams.metrics import CameraCollector

    stats = PublisherStats()
    registry = CollectorRegistry()
    registry.register(CameraCollector("cam-9", lambda: stats, lambda: SourceStats(skipped=2), lambda: 7))
    stats.published, stats.delivered, stats.spool_dropped = 12, 10, 1
    text = generate_latest(registry).decode()
    assert 'lineguard_camera_frames_published_total{camera_id="cam-9"} 12.0' in text
    assert 'lineguard_camera_frames_delivered_total{camera_id="cam-9"} 10.0' in text
    assert 'lineguard_camera_frames_spool_dropped_total{camera_id="cam-9"} 1.0' in text
    assert 'lineguard_camera_source_skipped_total{camera_id="cam-9"} 2.0' in text
    assert 'lineguard_camera_spool_backlog{camera_id="cam-9"} 7.0' in text
