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

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError
from schemas.records import Frame, InspectionResult
from vision.export_dataset_labels import (
    DEFECT,
    GOOD,
    Correction,
    ExportFilter,
    Identity,
    Labelled,
    decide,
    index_results,
    label_from_ground_truth,
    label_from_result,
)
from vision.export_dataset_sources import corrections_from_mongodb, read_topic, results_from_mongodb
from vision.export_dataset_writing import (
    MANIFEST_FILE,
    ExportLayout,
    ExportSummary,
    export_frames,
    frame_file_name,
    voc_annotation,
)

__all__ = [
    "DEFECT",
    "GOOD",
    "MANIFEST_FILE",
    "Correction",
    "ExportFilter",
    "ExportLayout",
    "ExportSources",
    "ExportSummary",
    "Identity",
    "Labelled",
    "corrections_from_mongodb",
    "decide",
    "export_frames",
    "frame_file_name",
    "index_results",
    "label_from_ground_truth",
    "label_from_result",
    "read_topic",
    "results_from_mongodb",
    "run_export",
    "voc_annotation",
]

logger = logging.getLogger(__name__)


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
