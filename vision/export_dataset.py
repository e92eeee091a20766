"""``lineguard dataset export``: production frames back into a folder-per-class training set.

Frame pixels travel only through Kafka (the frames topic; claim-checked ones through GridFS), verdicts are in
MongoDB (one document per frame and model version, written by the workers) and on the results topic. Export
joins them on the frame identity ``(camera_id, frame_number)``:

1. results are read first, from MongoDB (``--from mongodb``) or the results topic (``--from topic``), filtered
   by line, model, version and capture time; they are small, so they are held in memory;
2. corrected labels come from a ``labels`` collection when it exists. A document there is
   ``{"camera_id": str, "frame_number": int, "label": str, "labelled_by": str?, "labelled_at": date?}``; its
   ``_id`` is free (``"<camera_id>:<frame_number>"`` is the convention);
3. the frames topic is streamed from its beginning to the end it had when export started; each frame with a
   result (or a correction) is written, bytes unchanged, to ``OUT/<label>/<camera>_<frame>.<ext>``.

Which label a frame gets, strongest first: a person's correction, the frame's own ground truth (synthetic and
evaluation cameras), the model's result (OK -> ``good``; DEFECT -> the best detection or the most likely
defect class, ``defect`` for anomaly models). UNCERTAIN verdicts are skipped unless asked for, because a label
nobody trusts does not belong in training data. ``OUT/export.jsonl`` records where every file came from;
exporting again into the same folder updates files in place (a frame whose label changed moves class folder)
instead of duplicating them.
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
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError, SerializationError, ServiceUnavailableError
from schemas.records import Frame, ImageEncoding, InspectionResult, Verdict

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


def corrections_from_mongodb(collection: Any) -> dict[Identity, str]:
    """Corrected labels by frame identity (the latest ``labelled_at`` wins when a frame has several)."""
    from pymongo import ASCENDING
    from pymongo.errors import PyMongoError

    corrections: dict[Identity, str] = {}
    try:
        for doc in collection.find({}, {"camera_id": 1, "frame_number": 1, "label": 1}).sort(
            "labelled_at", ASCENDING
        ):
            if isinstance(doc.get("label"), str) and doc["label"]:
                corrections[(str(doc["camera_id"]), int(doc["frame_number"]))] = doc["label"]
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
    from lineguard.claimcheck import resolve_image

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


def export_frames(
    frames: Iterable[Frame],
    results: dict[Identity, InspectionResult],
    corrections: dict[Identity, str],
    out: Path,
    selection: ExportFilter,
    claim_store: Any | None = None,
    summary: ExportSummary | None = None,
    on_frame: Callable[[], None] | None = None,
) -> ExportSummary:
    """Write each frame that has a result or a correction into ``out/<label>/``."""
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
        result = results.get(identity)
        if identity in seen:
            summary.skipped["duplicate_frame"] += 1  # a producer retry published it twice
            continue
        if result is None and identity not in corrections:
            summary.skipped["no_result"] += 1
            continue
        label: str | None
        if identity in corrections:
            label, source = corrections[identity], "correction"
        elif (truth := label_from_ground_truth(frame)) is not None:
            label, source = truth, "ground_truth"
        else:
            assert result is not None
            label, source = label_from_result(result, selection.include_uncertain), "model"
        if label is None:
            summary.skipped[f"verdict_{result.verdict.value.lower()}" if result else "unlabelled"] += 1
            continue
        try:
            data, encoding = _image_bytes(frame, claim_store)
            folder = _class_folder(label)
        except Exception as exc:  # one bad frame (claim-check gone, odd label) must not end the export
            summary.skipped["unreadable_image"] += 1
            logger.warning("skipping frame %s#%d: %s", frame.camera_id, frame.frame_number, exc)
            continue
        name = frame_file_name(frame, encoding)
        key = f"{frame.camera_id}:{frame.frame_number}"
        previous = manifest.get(key)
        if previous is not None and previous["path"] != f"{folder}/{name}":
            (out / previous["path"]).unlink(missing_ok=True)  # relabelled since the last export
        (out / folder).mkdir(exist_ok=True)
        (out / folder / name).write_bytes(data)
        seen.add(identity)
        manifest[key] = {
            "id": key,
            "path": f"{folder}/{name}",
            "label": label,
            "label_source": source,
            "camera_id": frame.camera_id,
            "line_id": frame.line_id,
            "frame_number": frame.frame_number,
            "captured_at": frame.captured_at.isoformat(),
            "model": None if result is None else f"{result.model.name}:{result.model.version}",
            "verdict": None if result is None else result.verdict.value,
        }
        summary.written[label] += 1
        summary.sources[source] += 1
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
        corrections: dict[Identity, str] = {}
        claim_store = None
        if database is not None:
            from lineguard.claimcheck import GridFSClaimCheckStore

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
        return export_frames(frames, results, corrections, out, selection, claim_store, summary, on_frame)
    finally:
        if client is not None:
            client.close()
