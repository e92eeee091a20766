"""``lineguard dataset export``: production frames back into a training set (folder-per-class or VOC).

Frame pixels travel only through Kafka (the frames topic; claim-checked ones through GridFS), verdicts are in
MongoDB (one document per frame and model version, written by the workers) and on the results topic. Export
joins them on the frame identity ``(camera_id, frame_number)``:

1. results are read first, from MongoDB (``--from mongodb``) or the results topic (``--from topic``), filtered
   by line, model, version and capture time; they are small, so they are held in memory;
2. corrected labels come from a ``labels`` collection when it exists. A document there is
   ``{"camera_id": str, "frame_number": int, "label": str, "boxes": [{"label", "x_min", "y_min", "x_max",
   "y_max"}]?, "labelled_by": str?, "labelled_at": date?}`` (boxes normalized to [0, 1]); its ``_id`` is free
   (``"<camera_id>:<frame_number>"`` is the convention);
3. the frames topic is streamed from its beginning to the end it had when export started; each frame with a
   result (or a correction) is written, bytes unchanged, in one of two layouts: ``folder``
   (``OUT/<label>/<camera>_<frame>.<ext>``, classification) or ``voc`` (``OUT/JPEGImages/`` +
   ``OUT/Annotations/*.xml``, detection).

Which label a frame gets, strongest first: a person's correction, the frame's own ground truth (synthetic and
evaluation cameras), the model's result (OK -> ``good``; DEFECT -> the best detection or the most likely
defect class, ``defect`` for anomaly models). Boxes follow the same order; the model's detections count only
from ``min_box_score`` up. UNCERTAIN verdicts are skipped unless asked for, because a label nobody trusts
does not belong in training data. ``OUT/export.jsonl`` records where every file came from; exporting again
into the same folder updates files in place (a frame whose label changed moves class folder) instead of
duplicating them.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError, SerializationError, ServiceUnavailableError
from schemas.records import Frame, ImageEncoding, InspectionResult, Verdict
from vision.samples import BoxLabel

logger = logging.getLogger(__name__)

GOOD = "good"
DEFECT = "defect"
MANIFEST_FILE = "export.jsonl"
Identity = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which results to export (None = any)."""

    line: str | None = None
    model: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_uncertain: bool = False
    min_box_score: float = 0.5  # model detections below this are not written as boxes

    def accepts(self, result: InspectionResult) -> bool:
        return (
            (self.line is None or result.line_id == self.line)
            and (self.model is None or result.model.name == self.model)
            and (self.model_version is None or result.model.version == self.model_version)
            and (self.since is None or result.captured_at >= self.since)
            and (self.until is None or result.captured_at < self.until)
        )

    def mongo_query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.line is not None:
            query["line_id"] = self.line
        if self.model is not None:
            query["model.name"] = self.model
        if self.model_version is not None:
            query["model.version"] = self.model_version
        captured: dict[str, datetime] = {}
        if self.since is not None:
            captured["$gte"] = self.since
        if self.until is not None:
            captured["$lt"] = self.until
        if captured:
            query["captured_at"] = captured
        return query


@dataclass
class ExportSummary:
    """What an export did; ``skipped`` counts frames by reason."""

    written: Counter[str] = field(default_factory=Counter)  # per label
    sources: Counter[str] = field(default_factory=Counter)  # per label source
    skipped: Counter[str] = field(default_factory=Counter)
    results: int = 0
    frames_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "written": dict(self.written),
            "label_sources": dict(self.sources),
            "skipped": dict(self.skipped),
            "results": self.results,
            "frames_read": self.frames_read,
        }


@dataclass(frozen=True, slots=True)
class Correction:
    """A person's label for a frame; ``boxes`` (normalized) when they drew them, else None."""

    label: str
    boxes: tuple[BoxLabel, ...] | None = None


@dataclass(frozen=True, slots=True)
class Labelled:
    """How a frame is written: its image label, its boxes and where they came from."""

    label: str
    boxes: tuple[BoxLabel, ...]
    source: str  # correction | ground_truth | model


# ------------------------------------------------------------------------------------------ labels


def label_from_result(result: InspectionResult, include_uncertain: bool = False) -> str | None:
    """The training label a result implies, or None when it should not be trusted."""
    if result.verdict is Verdict.OK:
        return GOOD
    if result.verdict is Verdict.UNCERTAIN:
        return "uncertain" if include_uncertain else None
    if result.verdict is not Verdict.DEFECT:
        return None
    if result.detections:
        return max(result.detections, key=lambda d: d.score).label
    defects = [score for score in result.class_scores if score.label != GOOD]
    if defects:
        return max(defects, key=lambda s: s.score).label
    return DEFECT


def label_from_ground_truth(frame: Frame) -> str | None:
    if frame.ground_truth is None:
        return None
    labels = [label for label in frame.ground_truth.labels if label != GOOD]
    return labels[0] if labels else GOOD


def _truth_boxes(frame: Frame) -> tuple[BoxLabel, ...]:
    assert frame.ground_truth is not None
    return tuple(BoxLabel(b.label, b.x_min, b.y_min, b.x_max, b.y_max) for b in frame.ground_truth.boxes)


def decide(
    frame: Frame, result: InspectionResult | None, correction: Correction | None, selection: ExportFilter
) -> Labelled | str:
    """The label and boxes a frame is exported with, or the reason it is skipped."""
    if correction is not None:
        if correction.boxes is not None or correction.label == GOOD:
            return Labelled(correction.label, correction.boxes or (), "correction")
        # A label without boxes: keep boxes from the truth or the model only where they agree with it.
        fallback = _truth_boxes(frame) if frame.ground_truth is not None else ()
        if not fallback and result is not None:
            fallback = _model_boxes(result, selection)
        return Labelled(
            correction.label, tuple(b for b in fallback if b.label == correction.label), "correction"
        )
    if (truth := label_from_ground_truth(frame)) is not None:
        return Labelled(truth, _truth_boxes(frame), "ground_truth")
    if result is None:
        return "no_result"
    label = label_from_result(result, selection.include_uncertain)
    if label is None:
        return f"verdict_{result.verdict.value.lower()}"
    return Labelled(label, _model_boxes(result, selection) if label != GOOD else (), "model")


def _model_boxes(result: InspectionResult, selection: ExportFilter) -> tuple[BoxLabel, ...]:
    return tuple(
        BoxLabel(d.label, d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max)
        for d in result.detections
        if d.score >= selection.min_box_score
    )


def _newer(result: InspectionResult, other: InspectionResult | None) -> bool:
    return other is None or result.inferred_at > other.inferred_at


def index_results(
    results: Iterable[InspectionResult], selection: ExportFilter
) -> dict[Identity, InspectionResult]:
    """One result per frame: the latest inference among those the filter accepts."""
    index: dict[Identity, InspectionResult] = {}
    for result in results:
        if selection.accepts(result) and _newer(result, index.get(result.identity)):
            index[result.identity] = result
    return index


# ------------------------------------------------------------------------------------------ sources


def results_from_mongodb(
    collection: Any, selection: ExportFilter, skipped: Counter[str]
) -> Iterator[InspectionResult]:
    """Inspection documents written by the workers (``workers.sinks.mongo``), as records; malformed ones are
    counted in ``skipped["malformed_result"]``."""
    from pymongo.errors import PyMongoError

    try:
        for document in collection.find(selection.mongo_query(), {"_id": 0}):
            for name in ("captured_at", "received_at", "inferred_at"):
                # BSON dates are UTC; a client without tz_aware=True hands them back naive.
                moment = document.get(name)
                if isinstance(moment, datetime) and moment.tzinfo is None:
                    document[name] = moment.replace(tzinfo=UTC)
            try:
                yield InspectionResult.from_dict(document)
            except (KeyError, ValueError, SerializationError) as exc:
                skipped["malformed_result"] += 1
                logger.debug("malformed inspection document: %s", exc)
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"cannot read inspection results from MongoDB: {exc}") from exc


def _box_labels(raw: Any) -> tuple[BoxLabel, ...] | None:
    if not isinstance(raw, list):
        return None
    return tuple(
        BoxLabel(str(b["label"]), float(b["x_min"]), float(b["y_min"]), float(b["x_max"]), float(b["y_max"]))
        for b in raw
    )


def corrections_from_mongodb(collection: Any) -> dict[Identity, Correction]:
    """Corrected labels by frame identity (the latest ``labelled_at`` wins when a frame has several)."""
    from pymongo import ASCENDING
    from pymongo.errors import PyMongoError

    corrections: dict[Identity, Correction] = {}
    fields = {"camera_id": 1, "frame_number": 1, "label": 1, "boxes": 1}
    try:
        for doc in collection.find({}, fields).sort("labelled_at", ASCENDING):
            if not isinstance(doc.get("label"), str) or not doc["label"]:
                continue
            try:
                boxes = _box_labels(doc.get("boxes"))
            except (KeyError, TypeError, ValueError):
                logger.warning(
                    "ignoring malformed boxes of the correction of %s#%s",
                    doc["camera_id"],
                    doc["frame_number"],
                )
                boxes = None
            corrections[(str(doc["camera_id"]), int(doc["frame_number"]))] = Correction(doc["label"], boxes)
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"cannot read corrected labels from MongoDB: {exc}") from exc
    return corrections


def read_topic(
    kafka_config: dict[str, Any], topic: str, deserialize: Callable[[bytes, Any], Any], skipped: Counter[str]
) -> Iterator[Any]:
    """Every record of ``topic`` from the beginning up to its end at the time of the call, deserialized.

    Reads with its own throwaway consumer group and commits nothing, so it disturbs no worker. Records that
    do not deserialize are counted in ``skipped["undecodable"]`` and passed over.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
    from confluent_kafka.serialization import MessageField, SerializationContext

    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"lineguard-export-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise ConfigurationError(f"topic {topic} does not exist")
        pending: set[int] = set()
        for partition in info.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)
            if high > low:
                pending.add(partition)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        while pending:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                        continue
                    raise ServiceUnavailableError(f"reading {topic}: {error}")
                value = message.value()
                if value is None:
                    continue  # a tombstone: nothing to export
                context = SerializationContext(topic, MessageField.VALUE, message.headers())
                try:
                    yield deserialize(value, context)
                except SerializationError as exc:
                    skipped["undecodable"] += 1
                    logger.debug(
                        "undecodable record at %s[%d]@%d: %s",
                        topic,
                        message.partition(),
                        message.offset(),
                        exc,
                    )
    except KafkaException as exc:
        raise ServiceUnavailableError(f"cannot read topic {topic}: {exc}") from exc
    finally:
        consumer.close()


# ------------------------------------------------------------------------------------------ writing

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def frame_file_name(frame: Frame, encoding: ImageEncoding) -> str:
    extension = ".jpg" if encoding is ImageEncoding.JPEG else ".png"
    return f"{_UNSAFE.sub('_', frame.camera_id)}_{frame.frame_number:010d}{extension}"


def _image_bytes(frame: Frame, claim_store: Any | None) -> tuple[bytes, ImageEncoding]:
    from infra.claimcheck import resolve_image

    data = resolve_image(frame, claim_store)
    if frame.encoding in (ImageEncoding.JPEG, ImageEncoding.PNG):
        return data, frame.encoding
    # Unknown encodings are decoded and re-encoded as PNG, so the training folder holds only real images.
    import cv2

    from vision.datasets.images import decode_image

    ok, encoded = cv2.imencode(".png", decode_image(data, f"{frame.camera_id}#{frame.frame_number}"))
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes(), ImageEncoding.PNG


def _class_folder(label: str) -> str:
    safe = _UNSAFE.sub("_", label).strip("._")
    if not safe:
        raise ValueError(f"label {label!r} cannot be a folder name")
    return safe


def _read_manifest(out: Path) -> dict[str, dict[str, Any]]:
    path = out / MANIFEST_FILE
    if not path.is_file():
        return {}
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {entry["id"]: entry for entry in entries}


def voc_annotation(file_name: str, width: int, height: int, channels: int, boxes: Iterable[BoxLabel]) -> str:
    """A Pascal VOC annotation (1-based inclusive pixel corners, as :mod:`vision.datasets.voc` reads them)."""
    from xml.etree import ElementTree

    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "filename").text = file_name
    size = ElementTree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", channels)):
        ElementTree.SubElement(size, tag).text = str(value)
    for box in boxes:
        obj = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(obj, "name").text = box.label
        ElementTree.SubElement(obj, "difficult").text = "0"
        corners = ElementTree.SubElement(obj, "bndbox")
        x_min, y_min = round(box.x_min * width), round(box.y_min * height)
        x_max = max(round(box.x_max * width), x_min + 1)
        y_max = max(round(box.y_max * height), y_min + 1)
        for tag, value in (("xmin", x_min + 1), ("ymin", y_min + 1), ("xmax", x_max), ("ymax", y_max)):
            ElementTree.SubElement(corners, tag).text = str(value)
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode") + "\n"


class ExportLayout(StrEnum):
    """``folder``: ``<label>/<image>`` (classification); ``voc``: ``JPEGImages/`` + ``Annotations/*.xml``
    (detection, boxes from corrections, ground truth or the model's detections)."""

    folder = "folder"
    voc = "voc"


def _write(
    out: Path, layout: ExportLayout, frame: Frame, name: str, data: bytes, labelled: Labelled
) -> list[str]:
    """Write one frame; returns the files written (relative to ``out``)."""
    if layout is ExportLayout.folder:
        folder = _class_folder(labelled.label)
        (out / folder).mkdir(exist_ok=True)
        (out / folder / name).write_bytes(data)
        return [f"{folder}/{name}"]
    (out / "JPEGImages").mkdir(exist_ok=True)
    (out / "Annotations").mkdir(exist_ok=True)
    (out / "JPEGImages" / name).write_bytes(data)
    xml_name = f"{Path(name).stem}.xml"
    annotation = voc_annotation(name, frame.width, frame.height, frame.channels, labelled.boxes)
    (out / "Annotations" / xml_name).write_text(annotation, encoding="utf-8")
    return [f"JPEGImages/{name}", f"Annotations/{xml_name}"]


def export_frames(
    frames: Iterable[Frame],
    results: dict[Identity, InspectionResult],
    corrections: dict[Identity, Correction],
    out: Path,
    selection: ExportFilter,
    claim_store: Any | None = None,
    summary: ExportSummary | None = None,
    on_frame: Callable[[], None] | None = None,
    layout: ExportLayout = ExportLayout.folder,
) -> ExportSummary:
    """Write each frame that has a result or a correction into ``out`` in ``layout``."""
    summary = summary or ExportSummary()
    summary.results = len(results)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out)
    seen: set[Identity] = set()
    read: set[Identity] = set()
    for frame in frames:
        summary.frames_read += 1
        if on_frame is not None:
            on_frame()
        identity = frame.identity
        read.add(identity)
        if identity in seen:
            summary.skipped["duplicate_frame"] += 1  # a producer retry published it twice
            continue
        result = results.get(identity)
        if result is None and identity not in corrections:
            summary.skipped["no_result"] += 1
            continue
        decision = decide(frame, result, corrections.get(identity), selection)
        if isinstance(decision, str):
            summary.skipped[decision] += 1
            continue
        if layout is ExportLayout.voc and decision.label != GOOD and not decision.boxes:
            # A defect image without boxes would teach a detector that the defect is background.
            summary.skipped["defect_without_boxes"] += 1
            continue
        try:
            data, encoding = _image_bytes(frame, claim_store)
            name = frame_file_name(frame, encoding)
            key = f"{frame.camera_id}:{frame.frame_number}"
            previous = manifest.get(key)
            written = _write(out, layout, frame, name, data, decision)
        except Exception as exc:  # one bad frame (claim-check gone, odd label) must not end the export
            summary.skipped["unreadable_image"] += 1
            logger.warning("skipping frame %s#%d: %s", frame.camera_id, frame.frame_number, exc)
            continue
        if previous is not None:
            for stale in set(previous.get("files", [previous["path"]])) - set(written):
                (out / stale).unlink(missing_ok=True)  # relabelled (or re-encoded) since the last export
        seen.add(identity)
        manifest[key] = {
            "id": key,
            "path": written[0],
            "files": written,
            "label": decision.label,
            "boxes": len(decision.boxes),
            "label_source": decision.source,
            "camera_id": frame.camera_id,
            "line_id": frame.line_id,
            "frame_number": frame.frame_number,
            "captured_at": frame.captured_at.isoformat(),
            "model": None if result is None else f"{result.model.name}:{result.model.version}",
            "verdict": None if result is None else result.verdict.value,
        }
        summary.written[decision.label] += 1
        summary.sources[decision.source] += 1
    # Frames expire from the topic before their MongoDB records do: say how many results had none left.
    without_frame = len(set(results) - read)
    if without_frame:
        summary.skipped["result_without_frame"] = without_frame
    lines = [json.dumps(manifest[key]) for key in sorted(manifest)]
    (out / MANIFEST_FILE).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return summary


# ------------------------------------------------------------------------------------------ wiring


@dataclass(frozen=True, slots=True)
class ExportSources:
    """Where to read from: Kafka (always, for the frames) and MongoDB (results, labels, claim-checks)."""

    kafka_config: dict[str, Any]
    frames_topic: str
    results_topic: str
    mongodb_uri: str | None
    database: str = "lineguard"
    collection: str = "inspections"
    labels_collection: str = "labels"
    schema_registry: Any | None = None


def run_export(
    sources: ExportSources,
    out: Path,
    results_from: str = "mongodb",
    selection: ExportFilter | None = None,
    on_frame: Callable[[], None] | None = None,
    layout: ExportLayout = ExportLayout.folder,
) -> ExportSummary:
    """Join results (from ``"mongodb"`` or ``"topic"``) and corrections with the frames topic into ``out``."""
    from schemas.serde import AvroRecordDeserializer

    selection = selection or ExportFilter()
    if results_from not in ("mongodb", "topic"):
        raise ConfigurationError(f"--from must be mongodb or topic, not {results_from!r}")
    if results_from == "mongodb" and sources.mongodb_uri is None:
        raise ConfigurationError("--from mongodb needs MongoDB (set MONGODB_URI or run `lineguard stack up`)")
    summary = ExportSummary()
    client: Any = None
    if sources.mongodb_uri is not None:
        from pymongo import MongoClient

        client = MongoClient(sources.mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
    try:
        database = client[sources.database] if client is not None else None
        if results_from == "mongodb":
            assert database is not None
            raw_results: Iterable[InspectionResult] = results_from_mongodb(
                database[sources.collection], selection, summary.skipped
            )
        else:
            deserializer = AvroRecordDeserializer(InspectionResult, sources.schema_registry)
            raw_results = read_topic(
                sources.kafka_config, sources.results_topic, deserializer, summary.skipped
            )
        results = index_results(raw_results, selection)
        corrections: dict[Identity, Correction] = {}
        claim_store = None
        if database is not None:
            from infra.claimcheck import GridFSClaimCheckStore

            if sources.labels_collection in database.list_collection_names():
                corrections = corrections_from_mongodb(database[sources.labels_collection])
            claim_store = GridFSClaimCheckStore(client, sources.database)
        logger.info("export: %d results, %d corrected labels", len(results), len(corrections))
        frames = read_topic(
            sources.kafka_config,
            sources.frames_topic,
            AvroRecordDeserializer(Frame, sources.schema_registry),
            summary.skipped,
        )
        return export_frames(
            frames, results, corrections, out, selection, claim_store, summary, on_frame, layout
        )
    finally:
        if client is not None:
            client.close()
