"""One demo run: services, topics, a worker process, a synthetic camera, the watch loop and the summary.

Process layout: the worker is a real ``python -m workers`` process (what a deployment runs, started through
:mod:`lineguard.demo.worker_child` so it also stops when the demo process dies), in its own session so that
Ctrl-C reaches only the demo, which then stops the camera, lets the worker finish what was published and
stops it with SIGTERM (drain and commit). The camera runs on a thread of the demo process and records each
frame's ground truth as it publishes it, so verdicts can be scored without re-reading the frames.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.settings import KafkaSettings
from lineguard.demo.options import DemoOptions, LiveStatus, prepare_endpoints, resolve_model
from lineguard.demo.tally import DemoTally
from lineguard.demo.watch import LagProbe, OutputWatcher, wait_for_assignment
from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV, Endpoints
from schemas.errors import ConfigurationError, LineguardError, ServiceUnavailableError
from schemas.records import Frame

__all__ = ["DemoOptions", "DemoRun", "LiveStatus", "prepare_endpoints", "resolve_model"]

log = logging.getLogger(__name__)

_WORKER_STOP_TIMEOUT_S = 40.0  # SIGTERM grace (the worker drains within its own 20 s bound) before SIGKILL
_LAG_INTERVAL_S = 1.0
_FINAL_SETTLE_S = 1.0  # let the watcher read what the worker flushed while it stopped


class _GroundTruthRecorder:
    """Wraps the camera's encoder: every frame it encodes is registered with its ground truth."""

    def __init__(self, encoder: Any, tally: DemoTally) -> None:
        self._encoder = encoder
        self._tally = tally

    def encode(self, captured: Any, part_id: str | None = None) -> Frame:
        frame: Frame = self._encoder.encode(captured, part_id)
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
        self._worker: subprocess.Popen[bytes] | None = None
        self._camera: Any = None
        self._camera_summary: Any = None
        self._camera_error: BaseException | None = None
        self.worker_log = options.log_dir / f"worker-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"

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
            self._start_worker(model_path)
            self._await_worker(kafka_config)
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
            worker_exit = self._stop_worker()
            time.sleep(_FINAL_SETTLE_S)
            watcher.stop()
            self._lag = lag_probe.measure()
            lag_probe.close()
            self._update()
        return self._summary(model_path, metadata, stopped_by, worker_exit, watcher.unreadable)

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
        client: Any = MongoClient(self.endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
        try:
            client.admin.command("ping")
        except PyMongoError as exc:
            raise ConfigurationError(
                f"MongoDB is unreachable ({type(exc).__name__}); "
                f"check `lineguard stack status` or {MONGODB_ENV}"
            ) from exc
        finally:
            client.close()

    # -- worker process --------------------------------------------------------------------------------
    def _worker_env(self, model_path: Path) -> dict[str, str]:
        options, topics = self.options, self.options.topics
        env = dict(os.environ)
        env.update(
            {
                KAFKA_ENV: self.endpoints.kafka_bootstrap,
                MONGODB_ENV: self.endpoints.mongodb_uri,
                "LINEGUARD_MONGODB_DATABASE": options.database,
                "LINEGUARD_WORKER_MONGO_COLLECTION": options.collection,
                "LINEGUARD_WORKER_FRAMES_TOPIC": topics.frames,
                "LINEGUARD_WORKER_RESULTS_TOPIC": topics.results,
                "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC": topics.defect_events,
                "LINEGUARD_WORKER_DEAD_LETTER_TOPIC": topics.dead_letters,
                "LINEGUARD_WORKER_GROUP_ID": options.group_id,
                "LINEGUARD_WORKER_MODEL": str(model_path),
                "LINEGUARD_WORKER_MAX_BATCH_SIZE": str(options.max_batch_size),
                "LINEGUARD_WORKER_MAX_WAIT_MS": str(options.max_wait_ms),
                # A demo worker that was killed must not hold its partitions for the default 45 s.
                "LINEGUARD_WORKER_SESSION_TIMEOUT_MS": "10000",
                "LINEGUARD_WORKER_COMMIT_INTERVAL_MS": "200",
                "LINEGUARD_DEMO_PARENT_PID": str(os.getpid()),
            }
        )
        return env

    def _start_worker(self, model_path: Path) -> None:
        self._phase = "starting the worker"
        self._update()
        self.worker_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.worker_log, "ab") as log_file:
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "lineguard.demo.worker_child"],
                env=self._worker_env(model_path),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to the demo, which stops the worker in order
            )

    def _worker_alive(self) -> bool:
        return self._worker is not None and self._worker.poll() is None

    def _await_worker(self, kafka_config: dict[str, Any]) -> None:
        self._phase = "waiting for the worker to join its group"
        self._update()
        ready = wait_for_assignment(
            kafka_config,
            self.options.group_id,
            self.options.topics.frames,
            self.options.worker_start_timeout_s,
            alive=self._worker_alive,
        )
        if not ready:
            raise LineguardError(self._worker_problem("did not join its consumer group in time"))

    def _worker_problem(self, what: str) -> str:
        code = self._worker.poll() if self._worker is not None else None
        state = f"exited with code {code}" if code is not None else what
        tail = _tail(self.worker_log, 8)
        return f"the worker {state}; its log is {self.worker_log}" + (f":\n{tail}" if tail else "")

    def _stop_worker(self) -> int | None:
        worker = self._worker
        if worker is None:
            return None
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=_WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("the worker did not stop within %.0f s; killing it", _WORKER_STOP_TIMEOUT_S)
                worker.kill()
                worker.wait()
            except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the drain
                worker.kill()
                worker.wait()
        return worker.returncode

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
        if thread.is_alive():
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
            if not self._worker_alive():
                raise LineguardError(self._worker_problem("stopped"))
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
        while time.monotonic() < deadline and self._worker_alive() and watcher.error is None:
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

    # -- summary ---------------------------------------------------------------------------------------
    def _count_documents(self) -> int | None:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        identities = self.tally.identities()
        if not identities:
            return 0
        numbers = [number for _camera, number in identities]
        client: Any = MongoClient(self.endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
        try:
            collection = client[self.options.database][self.options.collection]
            return int(
                collection.count_documents(
                    {
                        "camera_id": self.options.camera_id,
                        "frame_number": {"$gte": min(numbers), "$lte": max(numbers)},
                    }
                )
            )
        except PyMongoError as exc:
            log.warning("could not count the MongoDB documents: %s", exc)
            return None
        finally:
            client.close()

    def _summary(
        self, model_path: Path, metadata: Any, stopped_by: str, worker_exit: int | None, unreadable: int
    ) -> dict[str, Any]:
        snapshot = self.tally.snapshot()
        camera = self._camera_summary
        topics = self.options.topics
        delivered = int(camera.close.delivered) if camera is not None else snapshot.produced
        return {
            "stopped_by": stopped_by,
            "duration_s": round(time.monotonic() - self._started, 1),
            "frames_requested": self.options.frames,
            "produced": snapshot.produced,
            "delivered": delivered,
            "results": snapshot.results,
            "missing_results": max(0, delivered - snapshot.results - snapshot.dead_letters),
            "duplicate_results": self.tally.duplicates,
            "foreign_results": snapshot.foreign_results,
            "unreadable_records": unreadable,
            "verdicts": snapshot.verdicts,
            "defects": snapshot.verdicts.get("DEFECT", 0),
            "defects_by_class": snapshot.defects_by_class,
            "defect_events": snapshot.defect_events,
            "dead_letters": snapshot.dead_letters,
            "dead_letters_by_reason": snapshot.dead_letters_by_reason,
            "mongodb_documents": self._count_documents(),
            "consumer_lag": self._lag,
            "throughput_fps": round(self.tally.throughput_fps(), 2),
            "latency_ms": self.tally.latency_ms(),
            "latency_segments_ms": self.tally.latency_segments_ms(),
            "accuracy": self.tally.accuracy(metadata.classes),
            "model": {
                "name": metadata.name,
                "version": metadata.version,
                "task": metadata.task.value,
                "path": str(model_path),
            },
            "worker": {"exit_code": worker_exit, "log": str(self.worker_log)},
            "where": {
                "kafka": self.endpoints.kafka_bootstrap,
                "topics": {
                    "frames": topics.frames,
                    "results": topics.results,
                    "defect_events": topics.defect_events,
                    "dead_letters": topics.dead_letters,
                },
                "consumer_group": self.options.group_id,
                "mongodb": {"database": self.options.database, "collection": self.options.collection},
                # The inspection console over this run's topics and database (issue 12).
                "console": {
                    "url": "http://127.0.0.1:8765/",
                    "command": f"lineguard console --database {self.options.database} "
                    f"--topic-prefix {self.options.topic_prefix} --worker-group {self.options.group_id}",
                },
            },
        }


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
