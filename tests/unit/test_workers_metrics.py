"""The worker's HTTP endpoints: Prometheus text on /metrics, /live and /ready follow the worker's state."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from workers.metrics import HealthServer, WorkerMetrics


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_endpoints_report_metrics_liveness_and_readiness() -> None:
    metrics = WorkerMetrics()
    state = {"live": True, "ready": False}
    server = HealthServer(metrics, "127.0.0.1", 0, lambda: state["live"], lambda: state["ready"])
    try:
        metrics.frames_in.inc(3)
        metrics.dead_letters.labels("CORRUPT_IMAGE").inc()
        metrics.batch_size.observe(8)
        metrics.model.info({"name": "m", "version": "v1", "task": "classify", "backend": "onnxruntime"})

        status, body = _get(server.port, "/metrics")
        assert status == 200
        assert "lineguard_worker_frames_in_total 3.0" in body
        assert 'lineguard_worker_dead_letters_total{reason="CORRUPT_IMAGE"} 1.0' in body
        assert "lineguard_worker_batch_size_count 1.0" in body
        assert 'version="v1"' in body

        assert _get(server.port, "/live")[0] == 200
        assert _get(server.port, "/ready")[0] == 503
        state["ready"] = True
        assert _get(server.port, "/ready")[0] == 200
        state["live"] = False
        assert _get(server.port, "/live")[0] == 503
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.close()


def test_two_workers_in_one_process_have_separate_registries() -> None:
    first, second = WorkerMetrics(), WorkerMetrics()
    first.frames_in.inc()
    assert b"lineguard_worker_frames_in_total 1.0" in first.render()
    assert b"lineguard_worker_frames_in_total 0.0" in second.render()


@pytest.mark.parametrize("max_message_bytes", [64 * 1024, 10 * 1024 * 1024])
def test_consumer_fetch_sizes_agree_with_the_record_bound(max_message_bytes: int) -> None:
    from workers.settings import WorkerSettings

    settings = WorkerSettings(max_message_bytes=max_message_bytes, exactly_once=True, worker_id="w-7")
    consumer = settings.consumer_config()
    assert consumer["enable.auto.commit"] is False and consumer["enable.auto.offset.store"] is False
    assert consumer["fetch.max.bytes"] >= max_message_bytes
    assert consumer["max.partition.fetch.bytes"] >= max_message_bytes
    assert consumer["receive.message.max.bytes"] >= consumer["fetch.max.bytes"] + 512
    producer = settings.producer_config()
    assert producer["message.max.bytes"] >= max_message_bytes
    assert producer["transactional.id"].endswith("-w-7")
