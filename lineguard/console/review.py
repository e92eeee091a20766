"""The review queue and the ``labels`` documents reviews write (the corrections ``lineguard dataset export``
reads; see :mod:`vision.export_dataset` for the fields it uses).

Which frames are sampled, by rules the user sets:

* every UNCERTAIN verdict;
* a score band: the worker's ``metadata.defect_score`` (written ``%.4f``, so in [0, 1] string order is
  numeric order and the band is a plain range query) between ``band_low`` and ``band_high``;
* a share per line: frames whose number is a multiple of ``round(1/share)`` (deterministic, so two reviewers
  see the same sample, and spread evenly over time, unlike the first N);
* disagreements: frames two model versions gave different verdicts (grouped by MongoDB).

A frame the asking reviewer already reviewed leaves their queue. A review's ``_id`` is
``<camera>:<frame>:<reviewer>``: reviewing again replaces the document (idempotent per frame and reviewer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from lineguard.console.queries import BadQuery, public_document

LABELS = "labels"
GOOD = "good"
QUEUE_SCAN = 400  # candidates read per rule before reviewed frames are removed


@dataclass(frozen=True, slots=True)
class QueueRules:
    uncertain: bool = True
    band_low: float | None = None
    band_high: float | None = None
    line_share: dict[str, float] = field(default_factory=dict)
    disagree_versions: tuple[str, str] | None = None
    line: str | None = None

    def __post_init__(self) -> None:
        if (self.band_low is None) != (self.band_high is None):
            raise BadQuery("a score band needs both band_low and band_high")
        if (
            self.band_low is not None
            and self.band_high is not None
            and not 0.0 <= self.band_low <= self.band_high <= 1.0
        ):
            raise BadQuery("the score band must satisfy 0 <= band_low <= band_high <= 1")
        for line, share in self.line_share.items():
            if not 0.0 < share <= 1.0:
                raise BadQuery(f"the share for line {line!r} must be in (0, 1]")


def ensure_indexes(labels: Collection[dict[str, Any]]) -> None:
    if "frame_reviewer" not in labels.index_information():
        labels.create_index(
            [("camera_id", ASCENDING), ("frame_number", ASCENDING), ("labelled_by", ASCENDING)],
            name="frame_reviewer",
        )


def _rule_queries(rules: QueueRules) -> list[tuple[str, dict[str, Any]]]:
    base: dict[str, Any] = {"line_id": rules.line} if rules.line else {}
    queries: list[tuple[str, dict[str, Any]]] = []
    if rules.uncertain:
        queries.append(("uncertain", {**base, "verdict": "UNCERTAIN"}))
    if rules.band_low is not None and rules.band_high is not None:
        band = {"$gte": f"{rules.band_low:.4f}", "$lte": f"{rules.band_high:.4f}"}
        queries.append(("score_band", {**base, "metadata.defect_score": band}))
    for line, share in sorted(rules.line_share.items()):
        if rules.line and line != rules.line:
            continue
        every = max(1, round(1 / share))
        queries.append((f"share:{line}", {"line_id": line, "frame_number": {"$mod": [every, 0]}}))
    return queries


def _disagreements(
    inspections: Collection[dict[str, Any]], versions: tuple[str, str], line: str | None
) -> list[dict[str, Any]]:
    match: dict[str, Any] = {"model.version": {"$in": list(versions)}}
    if line:
        match["line_id"] = line
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        {"$group": {"_id": {"c": "$camera_id", "f": "$frame_number", "v": "$verdict"}}},
        {"$group": {"_id": {"c": "$_id.c", "f": "$_id.f"}, "verdicts": {"$sum": 1}}},
        {"$match": {"verdicts": {"$gt": 1}}},
        {"$limit": QUEUE_SCAN},
    ]
    keys = [(row["_id"]["c"], row["_id"]["f"]) for row in inspections.aggregate(pipeline)]
    rows = []
    for camera, number in keys:
        found = inspections.find_one(
            {"camera_id": camera, "frame_number": number, "model.version": versions[1]}
        )
        if found is not None:
            rows.append(found)
    return rows


def review_queue(
    inspections: Collection[dict[str, Any]],
    labels: Collection[dict[str, Any]],
    rules: QueueRules,
    reviewer: str,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Frames to review, newest first, each with the rule that picked it, minus those ``reviewer`` did."""
    picked: dict[tuple[str, int], dict[str, Any]] = {}
    for rule, query in _rule_queries(rules):
        for row in (
            inspections.find(query, {"anomaly_mask_png": 0}).sort("captured_at", DESCENDING).limit(QUEUE_SCAN)
        ):
            picked.setdefault((row["camera_id"], row["frame_number"]), {**row, "rule": rule})
    if rules.disagree_versions is not None:
        for row in _disagreements(inspections, rules.disagree_versions, rules.line):
            picked.setdefault((row["camera_id"], row["frame_number"]), {**row, "rule": "disagreement"})
    if not picked:
        return []
    done = _reviewed(labels, reviewer, list(picked))
    rows = sorted(
        (row for key, row in picked.items() if key not in done),
        key=lambda row: (row["captured_at"], row["_id"]),
        reverse=True,
    )
    return [{**public_document(row), "rule": row["rule"]} for row in rows[:limit]]


def _reviewed(
    labels: Collection[dict[str, Any]], reviewer: str, keys: list[tuple[str, int]]
) -> set[tuple[str, int]]:
    ids = [label_id(camera, number, reviewer) for camera, number in keys]
    return {(doc["camera_id"], doc["frame_number"]) for doc in labels.find({"_id": {"$in": ids}})}


def label_id(camera: str, number: int, reviewer: str) -> str:
    return f"{camera}:{number}:{reviewer}"


@dataclass(frozen=True, slots=True)
class Review:
    camera_id: str
    frame_number: int
    model_version: str
    label: str
    action: str  # confirm | good | relabel
    boxes: list[dict[str, Any]] | None = None

    @classmethod
    def from_json(cls, body: object) -> Review:
        if not isinstance(body, dict):
            raise BadQuery("the review must be a JSON object")
        try:
            review = cls(
                camera_id=str(body["camera_id"]),
                frame_number=int(body["frame_number"]),
                model_version=str(body["model_version"]),
                label=str(body["label"]).strip(),
                action=str(body.get("action", "relabel")),
                boxes=_boxes(body.get("boxes")),
            )
        except KeyError as exc:
            raise BadQuery(f"the review lacks {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise BadQuery(f"the review is malformed: {exc}") from None
        if not review.label:
            raise BadQuery("the review needs a label")
        if review.action not in ("confirm", "good", "relabel"):
            raise BadQuery("action must be confirm, good or relabel")
        if review.action == "good" and review.label != GOOD:
            raise BadQuery("marking a frame good labels it 'good'")
        return review


def _boxes(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ValueError("boxes must be a list")
    boxes = []
    for box in raw:
        coords = {k: float(box[k]) for k in ("x_min", "y_min", "x_max", "y_max")}
        if not (0 <= coords["x_min"] < coords["x_max"] <= 1 and 0 <= coords["y_min"] < coords["y_max"] <= 1):
            raise ValueError("box coordinates are normalized to [0, 1] with min < max")
        boxes.append({"label": str(box["label"]), **coords})
    return boxes


def write_review(
    inspections: Collection[dict[str, Any]], labels: Collection[dict[str, Any]], review: Review, reviewer: str
) -> dict[str, Any]:
    """Store one review as a ``labels`` document (replacing this reviewer's earlier one for the frame)."""
    result = inspections.find_one(
        {
            "camera_id": review.camera_id,
            "frame_number": review.frame_number,
            "model.version": review.model_version,
        },
        {"verdict": 1, "model": 1},
    )
    if result is None:
        raise LookupError(
            f"no result of model version {review.model_version} for {review.camera_id}#{review.frame_number}"
        )
    document: dict[str, Any] = {
        "_id": label_id(review.camera_id, review.frame_number, reviewer),
        "camera_id": review.camera_id,
        "frame_number": review.frame_number,
        "label": review.label,
        "action": review.action,
        "labelled_by": reviewer,
        "labelled_at": datetime.now(UTC),
        "model_name": result["model"]["name"],
        "model_version": review.model_version,
        "model_verdict": result["verdict"],
    }
    if review.boxes is not None:
        document["boxes"] = review.boxes
    labels.replace_one({"_id": document["_id"]}, document, upsert=True)
    return {**document, "labelled_at": document["labelled_at"].isoformat()}
