"""A generated production record with known figures, for tests, benchmarks and the README's example report.

Every hour of every line inspects ``per_hour`` parts: ``defects`` of them DEFECT (classes in a fixed
rotation), ``uncertain`` UNCERTAIN and re-inspected OK ten minutes later (same ``part_id``), the rest OK. So
per line and hour: parts = per_hour, first-pass OK = per_hour - defects - uncertain, final OK = per_hour -
defects, inspections = per_hour + uncertain. ``shifted`` maps an hour index to another defect count (a
process shift the p-chart must flag); ``wobble`` varies the hourly count around ``defects`` (a process
that is in control but not flat). Documents have the shape the worker's MongoDB sink writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

CLASSES = ("scratch", "scratch", "dent", "stain", "scratch", "dent", "crack")


def _document(
    camera: str,
    line: str,
    station: str,
    frame: int,
    part: str,
    at: datetime,
    verdict: str,
    label: str | None,
    score: float,
    lot: str,
    version: str,
) -> dict[str, Any]:
    detections = (
        [
            {
                "label": label,
                "score": score,
                "box": {"label": label, "x_min": 0.1, "y_min": 0.1, "x_max": 0.3, "y_max": 0.3},
            }
        ]
        if label
        else []
    )
    return {
        "_id": f"{camera}:{frame}:{version}",
        "camera_id": camera,
        "line_id": line,
        "station_id": station,
        "frame_number": frame,
        "part_id": part,
        "source": {"topic": "generated", "partition": 0, "offset": frame},
        "model": {"name": "generated", "version": version, "task": "DETECTION"},
        "verdict": verdict,
        "class_scores": [],
        "detections": detections,
        "anomaly_score": None,
        "captured_at": at,
        "received_at": at,
        "inferred_at": at,
        "batch_size": 1,
        "worker_id": "generated",
        "metadata": {"defect_score": f"{score:.4f}", "lot": lot, "part_number": f"PN-{line}"},
    }


def generate(
    start: datetime,
    hours: int = 168,
    lines: tuple[str, ...] = ("L1", "L2"),
    per_hour: int = 100,
    defects: int = 5,
    uncertain: int = 2,
    shifted: Mapping[int, int] | None = None,
    version: str = "v1",
    wobble: int = 0,
) -> Iterator[dict[str, Any]]:
    """The documents of ``hours`` hours from ``start`` (see the module docstring for the known figures)."""
    shifted = shifted or {}
    for line_index, line in enumerate(lines):
        camera = f"cam-{line}"
        station = f"{line}-S{line_index + 1}"
        frame = 0
        class_turn = 0
        for hour in range(hours):
            hour_start = start + timedelta(hours=hour)
            lot = f"lot-{hour // 24:02d}"
            # wobble: the count moves by -wobble..+wobble in a fixed 5-hour cycle that averages to zero
            bad = shifted.get(hour, defects + wobble * ((hour * 3) % 5 - 2) // 2)
            spacing = 3000.0 / per_hour  # seconds: the re-inspections land in the hour's last 10 minutes
            for i in range(per_hour):
                at = hour_start + timedelta(seconds=i * spacing)
                part = f"{line}-{hour:04d}-{i:04d}"
                if i < bad:
                    label = CLASSES[class_turn % len(CLASSES)]
                    class_turn += 1
                    yield _document(
                        camera, line, station, frame, part, at, "DEFECT", label, 0.9, lot, version
                    )
                elif i < bad + uncertain:
                    yield _document(
                        camera, line, station, frame, part, at, "UNCERTAIN", None, 0.5, lot, version
                    )
                    frame += 1
                    again = at + timedelta(minutes=10)
                    yield _document(camera, line, station, frame, part, again, "OK", None, 0.1, lot, version)
                else:
                    yield _document(camera, line, station, frame, part, at, "OK", None, 0.05, lot, version)
                frame += 1
