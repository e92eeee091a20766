"""One demo run: services, topics, a worker process, a synthetic camera, the watch loop and the summary.

Process layout: the worker is a real ``python -m workers`` process (:mod:`lineguard.demo.worker_process`), in
its own session so that Ctrl-C reaches only the demo, which then stops the camera, lets the worker finish
what was published and stops it with SIGTERM (drain and commit). The camera runs on a thread of the demo
process and records each frame's ground truth as it publishes it, so verdicts can be scored without
re-reading the frames. The summary it returns is built by :mod:`lineguard.demo.summary`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from infra.settings import KafkaSettings
from lineguard.demo.options import DemoOptions, LiveStatus, prepare_endpoints, resolve_model
from lineguard.demo.summary import RunOutcome, demo_summary
from lineguard.demo.tally import DemoTally
from lineguard.demo.watch import LagProbe, OutputWatcher
from lineguard.demo.worker_process import DemoWorker
from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV, Endpoints
from schemas.errors import ConfigurationError, LineguardError, ServiceUnavailableError
from schemas.records import Frame

if TYPE_CHECKING:
    from streams.encoder import FrameEncoder
    from streams.runner import CameraRunner, RunSummary
    from streams.sources.base import CapturedFrame

__all__ = ["DemoOptions", "DemoRun", "LiveStatus", "prepare_endpoints", "resolve_model"]

log = logging.getLogger(__name__)

_LAG_INTERVAL_S = 1.0
_FINAL_SETTLE_S = 1.0  # let the watcher read what the worker flushed while it stopped


class _GroundTruthRecorder:
    """Wraps the camera's encoder: every frame it encodes is registered with its ground truth."""

    def __init__(self, encoder: FrameEncoder, tally: DemoTally) -> None:
        self._encoder = encoder
        self._tally = tally

    def encode(self, captured: CapturedFrame, part_id: str | None = None) -> Frame:
        frame = self._encoder.encode(captured, part_id)
        labels = frame.ground_truth.labels if frame.ground_truth is not None else ()
        self._tally.expect(frame.identity, tuple(labels))
        return frame


class DemoRun:
    """A demo run; :meth:`run` blocks until the frames are inspected (or Ctrl-C) and returns the summary."""

    def __init__(
        self,
        options: DemoOptions,
        endpoints: Endpoints,
        on_update: Callable[[LiveStatus], None] | None = None,
        refresh_s: float = 0.25,
    ) -> None:
        self.options = options
        self.endpoints = endpoints
        self.tally = DemoTally()
        self._on_update = on_update
        self._refresh_s = refresh_s
        self._started = time.monotonic()
        self._phase = "starting"
        self._lag: int | None = None
        self._camera: CameraRunner | None = None
        self._camera_summary: RunSummary | None = None
        self._camera_error: BaseException | None = None
        self.worker_log = options.log_dir / f"worker-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
        self._worker = DemoWorker(options, endpoints, self.worker_log)

    # -- the run ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        options = self.options
        model_path, metadata = resolve_model(options.model)
        # The user's security settings (SASL/TLS) apply to the demo's own clients too.
        kafka_config = KafkaSettings().client_config(self.endpoints.kafka_bootstrap)
        self._check_services(kafka_config)
        lag_probe = LagProbe(kafka_config, options.group_id, options.topics.frames)
        try:
            watcher = OutputWatcher(kafka_config, options.topics, self.tally)
        except BaseException:
            lag_probe.close()
            raise
        watcher.start()
        stopped_by = "frames"
        camera_thread: threading.Thread | None = None
        try:
            self._phase = "starting the worker"
            self._update()
            self._worker.start(model_path)
            self._phase = "waiting for the worker to join its group"
            self._update()
            self._worker.await_assignment(kafka_config)
            camera_thread = self._start_camera(kafka_config)
            self._phase = "running"
            try:
                self._watch(camera_thread, watcher, lag_probe)
            except KeyboardInterrupt:
                stopped_by = "interrupt"
                self._phase = "stopping (Ctrl-C again to abort)"
                self._stop_camera(camera_thread)
                self._drain(watcher, lag_probe, timeout_s=min(15.0, options.drain_timeout_s))
        finally:
            self._phase = "stopping"
            self._stop_camera(camera_thread)
            worker_exit = self._worker.stop()
            time.sleep(_FINAL_SETTLE_S)
            watcher.stop()
            self._lag = lag_probe.measure()
            lag_probe.close()
            self._update()
        outcome = RunOutcome(
            started=self._started,
            model_path=model_path,
            metadata=metadata,
            stopped_by=stopped_by,
            worker_exit=worker_exit,
            worker_log=self.worker_log,
            unreadable=watcher.unreadable,
            lag=self._lag,
            camera=self._camera_summary,
        )
        return demo_summary(self.options, self.endpoints, self.tally, outcome)

    def _check_services(self, kafka_config: dict[str, Any]) -> None:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        from infra.kafka_topics import ensure_topics

        topics = self.options.topics
        self._phase = "creating topics"
        self._update()
        try:
            ensure_topics(
                kafka_config,
                [topics.frames, topics.results, topics.defect_events, topics.dead_letters],
                partitions=self.options.partitions,
                timeout_s=15.0,
            )
        except ServiceUnavailableError as exc:
            raise ConfigurationError(
                f"Kafka at {self.endpoints.kafka_bootstrap} is unreachable ({exc}); check "
                f"`lineguard stack status` or {KAFKA_ENV}"
            ) from exc
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000
        )
        try:
            client.admin.command("ping")
        except PyMongoError as exc:
            raise ConfigurationError(
                f"MongoDB is unreachable ({type(exc).__name__}); "
                f"check `lineguard stack status` or {MONGODB_ENV}"
            ) from exc
        finally:
            client.close()

    # -- camera thread ---------------------------------------------------------------------------------
    def _start_camera(self, kafka_config: dict[str, Any]) -> threading.Thread:
        from streams.camera import build_camera
        from streams.settings import CameraSettings

        o = self.options
        settings = CameraSettings(
            source=f"synthetic:?seed={o.seed}&defect_rate={o.defect_rate}&size={o.width}x{o.height}",
            camera_id=o.camera_id,
            line_id=o.line_id,
            station_id="demo-station-1",
            topic=o.topics.frames,
            partitions=o.partitions,
            fps=o.fps,
            count=o.frames,
            claim_check=False,  # demo frames are far below the inline limit
            spool=False,  # the demo checked the broker; losing it mid-run should show, not be hidden
        )
        runner = build_camera(
            settings,
            kafka_config,
            self.endpoints.mongodb_uri,
            o.database,
            o.log_dir,
            create_topic=False,
        )
        runner.encoder = _GroundTruthRecorder(runner.encoder, self.tally)  # type: ignore[assignment]
        self._camera = runner

        def publish() -> None:
            try:
                self._camera_summary = runner.run()
            except BaseException as exc:
                log.exception("the camera failed")
                self._camera_error = exc

        thread = threading.Thread(target=publish, name="demo-camera", daemon=True)
        thread.start()
        return thread

    def _stop_camera(self, thread: threading.Thread | None) -> None:
        if thread is None:
            return
        if thread.is_alive() and self._camera is not None:
            self._camera.stop()
        thread.join(timeout=30)

    # -- watching --------------------------------------------------------------------------------------
    def _watch(self, camera: threading.Thread, watcher: OutputWatcher, lag_probe: LagProbe) -> None:
        """Refresh until the camera finished and every delivered frame is settled (or the drain times out)."""
        next_lag = 0.0
        last_progress = (time.monotonic(), -1)
        while True:
            now = time.monotonic()
            if now >= next_lag:
                self._lag = lag_probe.measure()
                next_lag = now + _LAG_INTERVAL_S
            self._update()
            if watcher.error is not None:
                raise LineguardError(f"reading the results failed: {watcher.error}")
            if self._camera_error is not None:
                raise LineguardError(f"the camera failed: {self._camera_error}")
            if not self._worker.alive():
                raise LineguardError(self._worker.problem("stopped"))
            if not camera.is_alive():
                self._phase = "finishing: waiting for the last results"
                settled = self.tally.settled
                if settled >= self._delivered():
                    return
                if settled != last_progress[1]:
                    last_progress = (now, settled)
                elif now - last_progress[0] > self.options.drain_timeout_s:
                    log.warning("no new results for %.0f s; stopping", self.options.drain_timeout_s)
                    return
            time.sleep(self._refresh_s)

    def _drain(self, watcher: OutputWatcher, lag_probe: LagProbe, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._worker.alive() and watcher.error is None:
            if self.tally.settled >= self._delivered():
                return
            self._lag = lag_probe.measure()
            self._update()
            time.sleep(self._refresh_s)

    def _delivered(self) -> int:
        summary = self._camera_summary
        if summary is not None:
            return int(summary.close.delivered)
        return self.tally.produced

    def _update(self) -> None:
        if self._on_update is not None:
            self._on_update(
                LiveStatus(
                    phase=self._phase,
                    elapsed_s=time.monotonic() - self._started,
                    frames_target=self.options.frames,
                    snapshot=self.tally.snapshot(),
                    lag=self._lag,
                )
            )
