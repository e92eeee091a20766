"""Per-line worker metrics: labels for line, camera, verdict, class and model version, bounded in number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from schemas.records import (
    Box,
    ClassScore,
    Detection,
    InspectionResult,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)
from workers.metrics import OTHER, BoundedLabel, WorkerMetrics, defect_classes


def _result(
    verdict: Verdict,
    line: str = "line-1",
    camera: str = "cam-1",
    scores: dict[str, float] | None = None,
    detections: tuple[str, ...] = (),
    age_s: float = 0.2,
) -> InspectionResult:
    now = datetime.now(UTC)
    return InspectionResult(
        camera_id=camera,
        line_id=line,
        station_id="st",
        frame_number=1,
        source=KafkaCoordinates(topic="frames", partition=0, offset=1),
        model=ModelInfo(name="m", version="v3", task=Task.CLASSIFICATION),
        verdict=verdict,
        class_scores=tuple(ClassScore(label=k, score=v) for k, v in (scores or {}).items()),
        detections=tuple(
            Detection(label=d, score=0.9, box=Box(label=d, x_min=0, y_min=0, x_max=0.5, y_max=0.5))
            for d in detections
        ),
        captured_at=now - timedelta(seconds=age_s),
        received_at=now,
        inferred_at=now,
        batch_size=1,
        worker_id="w",
    )


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_result_counts_in_the_totals_and_in_its_lines_series() -> None:
    metrics = WorkerMetrics()
    now = datetime.now(UTC)
    metrics.count_result(_result(Verdict.DEFECT, scores={"good": 0.6, "scratch": 0.3, "dent": 0.1}), now)
    metrics.count_result(_result(Verdict.OK, line="line-2", camera="cam-9", scores={"good": 0.9}), now)
    samples = _samples(metrics)
    assert samples[("lineguard_worker_results_out_total", ())] == 2
    assert samples[("lineguard_worker_verdicts_total", (("verdict", "DEFECT"),))] == 1
    key = (("camera", "cam-1"), ("line", "line-1"), ("model_version", "v3"), ("verdict", "DEFECT"))
    assert samples[("lineguard_worker_line_results_total", key)] == 1
    assert samples[("lineguard_worker_line_defects_total", (("class", "scratch"), ("line", "line-1")))] == 1
    assert ("lineguard_worker_line_defects_total", (("class", "good"), ("line", "line-2"))) not in samples
    assert samples[("lineguard_worker_line_capture_to_result_seconds_count", (("line", "line-2"),))] == 1
    # 0.2 s old: in the 0.25 s bucket, not in the 0.1 s one (a histogram, so Prometheus can aggregate it)
    bucket = "lineguard_worker_line_capture_to_result_seconds_bucket"
    assert samples[(bucket, (("le", "0.25"), ("line", "line-1")))] == 1
    assert samples[(bucket, (("le", "0.1"), ("line", "line-1")))] == 0


def test_defect_classes_per_task() -> None:
    assert defect_classes(_result(Verdict.DEFECT, detections=("crack", "spot", "crack"))) == ["crack", "spot"]
    assert defect_classes(_result(Verdict.DEFECT, scores={"good": 0.7, "dent": 0.3})) == ["dent"]
    assert defect_classes(_result(Verdict.DEFECT)) == [OTHER]


def test_label_values_are_bounded() -> None:
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", OTHER, "a", OTHER]
    metrics = WorkerMetrics()
    now = datetime.now(UTC)
    for number in range(600):  # a camera id that carries a frame number by mistake
        metrics.count_result(_result(Verdict.OK, camera=f"cam-{number}"), now)
    series = [labels for name, labels in _samples(metrics) if name.endswith("line_results_total")]
    cameras = {dict(labels)["camera"] for labels in series}
    assert len(cameras) == 513 and OTHER in cameras
