"""Drift watch: the frames of a recorded range, per camera, against the model's training reference (a folder
of its training images), by :mod:`vision.drift` - frame statistics and, with a model, its defect scores.

A camera that moved (sharpness), a lamp that dimmed or changed colour (brightness, colour means) shows up
here before the yield drops. The result is a report (JSON, Markdown) and a Prometheus text file
(``lineguard_drift_psi{camera,feature}``, ``lineguard_drift_ks_d{camera,feature}``) for node-exporter's
textfile collector, so an alert can watch it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from schemas.errors import ConfigurationError
from vision.drift import FEATURES, compare_features, frame_statistics
from workers.shadow.replay import PartitionRange

if TYPE_CHECKING:  # the caller loads the model: the backends pull in pydantic and the model runtimes
    from workers.backends import LoadedModel

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
_LEVELS = ("stable", "moderate", "shifted")


def _read_image(data: bytes) -> np.ndarray | None:
    import cv2

    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)


def reference_images(folder: Path, limit: int) -> list[np.ndarray]:
    if not folder.is_dir():
        raise ConfigurationError(f"reference folder {folder} does not exist")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    images = [img for img in (_read_image(p.read_bytes()) for p in paths) if img is not None]
    if not images:
        raise ConfigurationError(f"reference folder {folder} has no readable images")
    return images


def range_frames(
    kafka_config: dict[str, Any], topic: str, ranges: list[PartitionRange], camera: str | None
) -> Iterator[tuple[str, np.ndarray]]:
    """(camera, decoded image) of every inline frame in the range (claim-checked frames are skipped)."""
    # The worker's runtime (OpenCV, settings) loads with the watch.
    from workers.serving import frame_deserializer

    deserialize = frame_deserializer()
    consumer = Consumer({**kafka_config, "group.id": "lineguard-drift", "enable.auto.commit": False})
    try:
        wanted = [r for r in ranges if r.size]
        consumer.assign([TopicPartition(topic, r.partition, r.start) for r in wanted])
        remaining = {r.partition: r.end for r in wanted}
        idle = 0
        while remaining and idle < 100:  # 100 empty polls (10 s): the range is not readable
            message = consumer.poll(0.1)
            if message is None or message.error() is not None:
                idle += 1
                continue
            idle = 0
            partition, offset = message.partition(), message.offset()
            if partition not in remaining or offset is None or offset >= remaining[partition]:
                continue
            if offset + 1 >= remaining[partition]:
                del remaining[partition]
            try:
                frame = deserialize(message.value() or b"")
            except Exception:  # not a frame: drift is about the frames that are
                continue
            if frame is None or not frame.image or (camera is not None and frame.camera_id != camera):
                continue
            image = _read_image(bytes(frame.image))
            if image is not None:
                yield frame.camera_id, image
    finally:
        consumer.close()


def _features(images: list[np.ndarray]) -> dict[str, list[float]]:
    rows = [frame_statistics(img) for img in images]
    return {name: [row[name] for row in rows] for name in FEATURES}


def _scores(model: LoadedModel, images: list[np.ndarray]) -> list[float]:
    from vision.preprocess import preprocess_batch  # OpenCV, only when a model scores frames

    scores: list[float] = []
    for start in range(0, len(images), 16):
        chunk = images[start : start + 16]
        batch = preprocess_batch(chunk, model.metadata.preprocess)
        scores += [float(p.defect_score) for p in model.predict(batch)]
    return scores


def drift_report(
    reference: list[np.ndarray], frames: Iterator[tuple[str, np.ndarray]], model: LoadedModel | None = None
) -> dict[str, Any]:
    ref = _features(reference)
    if model is not None:
        ref["score"] = _scores(model, reference)
    by_camera: dict[str, list[np.ndarray]] = {}
    for camera, image in frames:
        by_camera.setdefault(camera, []).append(image)
    if not by_camera:
        raise ConfigurationError("the requested range holds no readable frames (for this camera)")
    cameras: dict[str, Any] = {}
    for camera in sorted(by_camera):
        current = _features(by_camera[camera])
        if model is not None:
            current["score"] = _scores(model, by_camera[camera])
        features = compare_features(ref, current)
        worst = max((f["level"] for f in features.values()), key=_LEVELS.index, default="stable")
        cameras[camera] = {"frames": len(by_camera[camera]), "level": worst, "features": features}
    return {"reference_frames": len(reference), "cameras": cameras}


def prometheus_text(report: dict[str, Any]) -> str:
    lines = [
        "# HELP lineguard_drift_psi Population stability index of a frame feature against the reference",
        "# TYPE lineguard_drift_psi gauge",
    ]
    ks_lines = [
        "# HELP lineguard_drift_ks_d Kolmogorov-Smirnov D of a frame feature against the reference",
        "# TYPE lineguard_drift_ks_d gauge",
    ]
    for camera, entry in report["cameras"].items():
        for feature, figures in entry["features"].items():
            labels = f'camera="{camera}",feature="{feature}"'
            lines.append(f"lineguard_drift_psi{{{labels}}} {figures['psi']}")
            ks_lines.append(f"lineguard_drift_ks_d{{{labels}}} {figures['ks_d']}")
    return "\n".join(lines + ks_lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    out = [f"# Drift against the training reference ({report['reference_frames']} images)", ""]
    out += ["| camera (level) | frames | feature | level | PSI | KS D | KS p | reference mean | now mean |"]
    out += ["|---|---|---|---|---|---|---|---|---|"]
    for camera, entry in report["cameras"].items():
        for feature, f in entry["features"].items():
            out.append(
                f"| {camera} ({entry['level']}) | {entry['frames']} | {feature} | {f['level']} | {f['psi']} "
                f"| {f['ks_d']} | {f['ks_p']} | {f['reference_mean']} | {f['current_mean']} |"
            )
    return "\n".join(out) + "\n"
