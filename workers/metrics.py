"""Prometheus metrics and the /live and /ready endpoints of one worker.

Each worker owns its registry, so several workers in one process (tests, the demo) never collide. The HTTP
server is a small ``http.server`` on a daemon thread: ``/metrics`` (Prometheus text format), ``/live`` (the
process loop is running) and ``/ready`` (model loaded, partitions assigned, not draining).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from schemas.records import InspectionResult, Verdict

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)

#: Distinct values one label may take per worker before further ones are folded into ``OTHER``: a plant has
#: dozens of lines and hundreds of cameras, and a bug that puts a frame number into a camera id must not
#: grow Prometheus without bound.
MAX_LINES = 64
MAX_CAMERAS = 512
MAX_CLASSES = 32
MAX_MODEL_VERSIONS = 8
OTHER = "OTHER"
GOOD_LABEL = "good"  # the good class of classifiers (vision.outputs.GOOD_LABEL): never a defect class


class BoundedLabel:
    """Passes a label value through until ``limit`` distinct values were seen, then answers ``OTHER``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


class WorkerMetrics:
    """Every metric a worker exports."""

    def __init__(self, registry: CollectorRegistry | None = None, role: str = "production") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.role = role  # every series of a non-production (shadow) worker carries role="<role>"
        r = self.registry
        self.frames_in = Counter(
            "lineguard_worker_frames_in", "Records consumed from the frames topic", registry=r
        )
        self.results_out = Counter(
            "lineguard_worker_results_out", "Inspection results acknowledged by the results topic", registry=r
        )
        self.verdicts = Counter("lineguard_worker_verdicts", "Results by verdict", ["verdict"], registry=r)
        self.defect_events = Counter("lineguard_worker_defect_events", "Defect events published", registry=r)
        self.dead_letters = Counter(
            "lineguard_worker_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "lineguard_worker_batch_size", "Frames per inference batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "lineguard_worker_stage_seconds",
            "Time spent per stage (decode per frame; inference and sinks per batch)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.capture_to_result_seconds = Histogram(
            "lineguard_worker_capture_to_result_seconds",
            "From the frame's capture time to its result being acknowledged by Kafka",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "lineguard_worker_consumer_lag",
            "High watermark minus position",
            ["topic", "partition"],
            registry=r,
        )
        self.in_flight = Gauge("lineguard_worker_in_flight", "Records received but not yet done", registry=r)
        self.paused = Gauge(
            "lineguard_worker_paused", "1 while backpressure pauses the partitions", registry=r
        )
        self.model = Info("lineguard_worker_model", "The model this worker serves", registry=r)
        # Per line: what a plant dashboard shows (yield, defects by class, latency per line).
        self.line_results = Counter(
            "lineguard_worker_line_results",
            "Results acknowledged, by line, camera, verdict and model version",
            ["line", "camera", "verdict", "model_version"],
            registry=r,
        )
        self.line_defects = Counter(
            "lineguard_worker_line_defects",
            "DEFECT verdicts by line and defect class (the top class, or each detection's label)",
            ["line", "class"],
            registry=r,
        )
        self.line_capture_to_result_seconds = Histogram(
            "lineguard_worker_line_capture_to_result_seconds",
            "Capture to acknowledged result, by line",
            ["line"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # Deadlines (workers.deadline): capture -> decision per line, inspected or fail-safe, and how many
        # frames got the fail-safe decision because their verdict could not be given in time.
        self.line_decision_seconds = Histogram(
            "lineguard_worker_line_decision_seconds",
            "Capture to acknowledged decision, by line and outcome (inspected, fail_safe)",
            ["line", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.deadline_decided = Counter(
            "lineguard_worker_deadline_missed",
            "Frames decided fail-safe (reject or pass) because the line's deadline could not be met",
            ["line", "decision"],
            registry=r,
        )
        # Called with every acknowledged result (the deadline stage's output-time estimate).
        self.on_result: Callable[[InspectionResult, datetime], None] | None = None
        self._line = BoundedLabel(MAX_LINES)
        self._camera = BoundedLabel(MAX_CAMERAS)
        self._class = BoundedLabel(MAX_CLASSES)
        self._model_version = BoundedLabel(MAX_MODEL_VERSIONS)

    def count_result(self, result: InspectionResult, now: datetime) -> None:
        """Count one acknowledged result in the totals and in the per-line series."""
        seconds = max(0.0, (now - result.captured_at).total_seconds())
        self.results_out.inc()
        self.verdicts.labels(result.verdict.value).inc()
        self.capture_to_result_seconds.observe(seconds)
        line = self._line(result.line_id)
        camera = self._camera(result.camera_id)
        version = self._model_version(result.model.version)
        self.line_results.labels(line, camera, result.verdict.value, version).inc()
        self.line_capture_to_result_seconds.labels(line).observe(seconds)
        outcome = "fail_safe" if result.deadline_missed else "inspected"
        self.line_decision_seconds.labels(line, outcome).observe(seconds)
        if self.on_result is not None:
            self.on_result(result, now)
        if result.verdict is Verdict.DEFECT:
            for label in defect_classes(result):
                self.line_defects.labels(line, self._class(label)).inc()

    def line_label(self, line_id: str) -> str:
        """The bounded label value of a line (the same one the per-line series use)."""
        return self._line(line_id)

    def render(self) -> bytes:
        if self.role == "production":
            return generate_latest(self.registry)
        return generate_latest(_WithLabels(self.registry, {"role": self.role}))


class _WithLabels:
    """A registry's metrics with constant labels added to every sample (prometheus_client has no const
    labels): the same metric names for both roles, told apart by the label."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self._registry = registry
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            relabelled = Metric(family.name, family.documentation, family.type, family.unit)
            relabelled.samples = [s._replace(labels={**s.labels, **self._labels}) for s in family.samples]
            yield relabelled


def defect_classes(result: InspectionResult) -> list[str]:
    """The defect classes one result counts for: each detection's label, else the best defect class."""
    if result.detections:
        return sorted({detection.label for detection in result.detections})
    # A DEFECT verdict can come with "good" on top (a defect threshold below 0.5): name the best defect class.
    defect_scores = [score for score in result.class_scores if score.label != GOOD_LABEL]
    if defect_scores:
        return [max(defect_scores, key=lambda score: score.score).label]
    return ["anomaly"] if result.anomaly_score is not None else [OTHER]


class HealthServer:
    """Serves /metrics, /live and /ready until :meth:`close`."""

    def __init__(
        self,
        metrics: WorkerMetrics,
        host: str,
        port: int,
        is_live: Callable[[], bool],
        is_ready: Callable[[], bool],
    ) -> None:
        handler = _handler_class(metrics, is_live, is_ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="worker-http", daemon=True)
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics (/live, /ready)", host, self.port)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_class(
    metrics: WorkerMetrics, is_live: Callable[[], bool], is_ready: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif self.path == "/live":
                ok = is_live()
                self._reply(200 if ok else 503, b"live\n" if ok else b"not live\n")
            elif self.path == "/ready":
                ok = is_ready()
                self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
            return

    return Handler
