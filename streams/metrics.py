"""Prometheus metrics of one camera producer, read from its counters at scrape time.

The publisher and the source already count everything; a collector turns those counters into metrics only
when Prometheus asks, so the per-frame hot path pays nothing for metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.publisher import PublisherStats
from streams.sources.base import SourceStats

# (metric name without prefix, help, PublisherStats field)
_PUBLISHER_COUNTERS = (
    ("frames_published", "Frames handed to the publisher", "published"),
    ("frames_delivered", "Frames acknowledged by Kafka (directly or from the spool)", "delivered"),
    ("bytes_delivered", "Record bytes acknowledged by Kafka", "delivered_bytes"),
    ("frames_failed", "Frames whose delivery failed for good (lost)", "failed"),
    (
        "frames_too_large",
        "Frames refused as too large (claim-check off, or over the Kafka limit)",
        "too_large",
    ),
    ("frames_claim_checked", "Frames whose image went to the claim-check store", "claim_checked"),
    ("frames_claim_check_failed", "Frames lost: the claim-check store was unreachable", "claim_check_failed"),
    ("frames_claim_check_full", "Of those, refused by a full claim-check store", "claim_check_full"),
    ("frames_spooled", "Frames written to the store-and-forward spool", "spooled"),
    ("frames_drained", "Spooled frames delivered", "drained"),
    ("frames_spool_dropped", "Spooled frames dropped to make room (drop-oldest)", "spool_dropped"),
    ("frames_spool_quarantined", "Damaged spool files set aside (frames lost)", "spool_quarantined"),
    ("frames_spool_write_errors", "Frames the disk refused to spool (lost)", "spool_write_errors"),
    ("spool_blocked_seconds", "Time capture waited for spool room (block policy)", "blocked_s"),
)
_SOURCE_COUNTERS = (
    ("source_frames", "Frames captured by the source", "frames"),
    ("source_skipped", "Unreadable inputs skipped by the source", "skipped"),
    ("source_reconnects", "Camera or stream re-opened after a loss", "reconnects"),
)


class CameraCollector(Collector):
    """Exposes one camera's counters, labelled with its identity."""

    def __init__(
        self,
        camera_id: str,
        publisher_stats: Callable[[], PublisherStats],
        source_stats: Callable[[], SourceStats],
        spool_backlog: Callable[[], int],
    ) -> None:
        self._labels = [camera_id]
        self._publisher_stats = publisher_stats
        self._source_stats = source_stats
        self._spool_backlog = spool_backlog

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        publisher = self._publisher_stats()
        source = self._source_stats()
        for name, help_text, field in _PUBLISHER_COUNTERS:
            family = CounterMetricFamily(f"lineguard_camera_{name}", help_text, labels=["camera_id"])
            family.add_metric(self._labels, float(getattr(publisher, field)))
            yield family
        for name, help_text, field in _SOURCE_COUNTERS:
            family = CounterMetricFamily(f"lineguard_camera_{name}", help_text, labels=["camera_id"])
            family.add_metric(self._labels, float(getattr(source, field)))
            yield family
        backlog = GaugeMetricFamily(
            "lineguard_camera_spool_backlog", "Frames waiting in the spool", labels=["camera_id"]
        )
        backlog.add_metric(self._labels, float(self._spool_backlog()))
        yield backlog


def serve_metrics(collector: CameraCollector, port: int, host: str = "0.0.0.0") -> CollectorRegistry:
    """Register the collector in a registry of its own and serve it on ``host:port`` (daemon thread)."""
    registry = CollectorRegistry()
    registry.register(collector)
    start_http_server(port, addr=host, registry=registry)
    return registry
