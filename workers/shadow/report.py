"""The shadow report: the candidate's documents (shadow collection) joined to production's verdicts of the
same frames (``inspections``) and to human labels (``labels``), compared by :mod:`vision.shadow_stats`.

Frames are matched on (camera, frame number), the identity every lineguard output carries. Of several
production documents of one frame (a re-inspection by another version) the latest inference counts. Frames
the candidate saw but production has no verdict for are counted, not compared.

Everything but ``generated_at``, ``report_id`` and the ``timing`` section is a function of the stored
documents, so two replays of one range (which rewrite the same shadow documents) give the same report.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from schemas.errors import ServiceUnavailableError
from vision.shadow_stats import ComparedFrame, breakdown, histogram, percentiles

GOOD_CLASS_LABEL = "good"
_CHUNK = 500
_FIELDS = {
    "camera_id": 1,
    "line_id": 1,
    "frame_number": 1,
    "verdict": 1,
    "model": 1,
    "metadata": 1,
    "class_scores": 1,
    "detections.label": 1,
    "anomaly_score": 1,
    "captured_at": 1,
    "received_at": 1,
    "inferred_at": 1,
}


@dataclass(frozen=True, slots=True)
class ReportQuery:
    model: str
    version: str
    line: str | None = None
    camera: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    shadow_collection: str = "shadow_inspections"
    production_collection: str = "inspections"
    labels_collection: str = "labels"
    max_disagreements: int = 200

    def shadow_filter(self) -> dict[str, Any]:
        match: dict[str, Any] = {"model.name": self.model, "model.version": self.version}
        if self.line is not None:
            match["line_id"] = self.line
        if self.camera is not None:
            match["camera_id"] = self.camera
        window: dict[str, Any] = {}
        if self.since is not None:
            window["$gte"] = self.since
        if self.until is not None:
            window["$lt"] = self.until
        if window:
            match["captured_at"] = window
        return match


def _score(doc: dict[str, Any]) -> float | None:
    try:
        return float((doc.get("metadata") or {})["defect_score"])
    except (KeyError, TypeError, ValueError):
        return None


def defect_class(doc: dict[str, Any]) -> str:
    """The class a document names: a detection's label, else the best non-good class score."""
    detections = doc.get("detections") or []
    if detections:
        return str(sorted(d.get("label", "defect") for d in detections)[0])
    scores = [s for s in doc.get("class_scores") or [] if s.get("label") != GOOD_CLASS_LABEL]
    if scores:
        return str(max(scores, key=lambda s: s.get("score", 0.0))["label"])
    return "anomaly" if doc.get("anomaly_score") is not None else "defect"


def _utc(moment: object) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _latency_ms(doc: dict[str, Any]) -> float | None:
    received, inferred = _utc(doc.get("received_at")), _utc(doc.get("inferred_at"))
    if received is None or inferred is None:
        return None
    return (inferred - received).total_seconds() * 1000.0


def _chunks(keys: list[tuple[str, int]]) -> Iterable[tuple[str, list[int]]]:
    by_camera: dict[str, list[int]] = {}
    for camera, number in keys:
        by_camera.setdefault(camera, []).append(number)
    for camera in sorted(by_camera):
        numbers = sorted(by_camera[camera])
        for start in range(0, len(numbers), _CHUNK):
            yield camera, numbers[start : start + _CHUNK]


def _production(
    db: Database[dict[str, Any]], query: ReportQuery, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], dict[str, Any]]:
    """Production's latest document per frame (never the candidate's own version)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for camera, numbers in _chunks(keys):
        selector = {"camera_id": camera, "frame_number": {"$in": numbers}}
        for doc in db[query.production_collection].find(selector, _FIELDS):
            model = doc.get("model") or {}
            if (model.get("name"), model.get("version")) == (query.model, query.version):
                continue
            key = (camera, int(doc["frame_number"]))
            seen = found.get(key)
            if seen is None or (_utc(doc.get("inferred_at")), str(doc.get("_id"))) > (
                _utc(seen.get("inferred_at")),
                str(seen.get("_id")),
            ):
                found[key] = doc
    return found


def _labels(
    db: Database[dict[str, Any]], query: ReportQuery, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """The latest human label per frame."""
    if query.labels_collection not in db.list_collection_names():
        return {}
    latest: dict[tuple[str, int], tuple[Any, str]] = {}
    fields = {"camera_id": 1, "frame_number": 1, "label": 1, "labelled_at": 1}
    for camera, numbers in _chunks(keys):
        for doc in db[query.labels_collection].find(
            {"camera_id": camera, "frame_number": {"$in": numbers}}, fields
        ):
            label = doc.get("label")
            if not isinstance(label, str) or not label:
                continue
            key = (camera, int(doc["frame_number"]))
            stamp = (_utc(doc.get("labelled_at")) or datetime.min.replace(tzinfo=UTC), label)
            if key not in latest or stamp > latest[key]:
                latest[key] = stamp
    return {key: stamp[1] for key, stamp in latest.items()}


def _timing(docs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [ms for ms in (_latency_ms(d) for d in docs) if ms is not None]
    received = [t for t in (_utc(d.get("received_at")) for d in docs) if t is not None]
    inferred = [t for t in (_utc(d.get("inferred_at")) for d in docs) if t is not None]
    span = (max(inferred) - min(received)).total_seconds() if received and inferred else 0.0
    return {
        "frames": len(docs),
        "received_to_inferred_ms": percentiles(latencies),
        "frames_per_second": round(len(docs) / span, 2) if span > 0 else None,
    }


def build_report(db: Database[dict[str, Any]], query: ReportQuery) -> dict[str, Any]:
    """The whole report as one JSON-ready dict."""
    try:
        shadow = list(db[query.shadow_collection].find(query.shadow_filter(), _FIELDS))
        keys = sorted({(d["camera_id"], int(d["frame_number"])) for d in shadow})
        production = _production(db, query, keys)
        labels = _labels(db, query, keys)
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"cannot read the shadow report's documents: {exc}") from exc
    shadow.sort(key=lambda d: (d["camera_id"], int(d["frame_number"])))
    frames: list[ComparedFrame] = []
    for doc in shadow:
        key = (doc["camera_id"], int(doc["frame_number"]))
        prod = production.get(key)
        if prod is None:
            continue
        frames.append(
            ComparedFrame(
                line=str(doc.get("line_id", "")),
                camera=key[0],
                frame_number=key[1],
                candidate_verdict=str(doc.get("verdict", "UNKNOWN")),
                candidate_score=_score(doc),
                candidate_class=defect_class(doc),
                production_verdict=str(prod.get("verdict", "UNKNOWN")),
                production_score=_score(prod),
                production_class=defect_class(prod),
                label=labels.get(key),
            )
        )
    versions = Counter(
        f"{(p.get('model') or {}).get('name')}:{(p.get('model') or {}).get('version')}"
        for p in production.values()
    )
    disagreeing = [f for f in frames if f.disagrees or (f.label is not None and _label_disagrees(f))]
    report: dict[str, Any] = {
        "candidate": {"model": query.model, "version": query.version},
        "production": {"versions": dict(sorted(versions.items()))},
        "selection": {
            "line": query.line,
            "camera": query.camera,
            "from": query.since.isoformat() if query.since else None,
            "to": query.until.isoformat() if query.until else None,
        },
        "frames": {
            "shadow": len(shadow),
            "compared": len(frames),
            "without_production_verdict": len(shadow) - len(frames),
            "labelled": sum(1 for f in frames if f.label is not None),
            "disagreeing": len(disagreeing),
        },
        "comparison": breakdown(frames),
        "scores": {
            "bins": len(histogram([])),
            "candidate": histogram(f.candidate_score for f in frames),
            "production": histogram(f.production_score for f in frames),
        },
        "disagreements": [_disagreement(f) for f in disagreeing[: query.max_disagreements]],
        "parity": {"status": "not checked"},
    }
    digest = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:12]
    generated = datetime.now(UTC)
    report["content_sha256"] = digest
    report["generated_at"] = generated.isoformat()
    report["report_id"] = f"{generated:%Y%m%dT%H%M%S}-{digest}"
    prod_docs = [
        production[(d["camera_id"], int(d["frame_number"]))]
        for d in shadow
        if (d["camera_id"], int(d["frame_number"])) in production
    ]
    report["timing"] = {"candidate": _timing(shadow), "production": _timing(prod_docs)}
    return report


def _label_disagrees(frame: ComparedFrame) -> bool:
    defective = frame.labelled_defective
    return (defective and frame.candidate_verdict == "OK") or (
        defective is False and frame.candidate_verdict == "DEFECT"
    )


def _disagreement(frame: ComparedFrame) -> dict[str, Any]:
    return {
        "line": frame.line,
        "camera": frame.camera,
        "frame_number": frame.frame_number,
        "production": frame.production_verdict,
        "candidate": frame.candidate_verdict,
        "production_score": frame.production_score,
        "candidate_score": frame.candidate_score,
        "label": frame.label,
        "link": f"/api/frames/{frame.camera}/{frame.frame_number}",
    }
