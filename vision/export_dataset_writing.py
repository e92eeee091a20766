"""Writing an export: frames joined with their results and corrections, bytes unchanged, in the ``folder``
or ``voc`` layout, with ``export.jsonl`` recording where every file came from (exporting again updates
files in place).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from schemas.records import Frame, ImageEncoding, InspectionResult
from vision.export_dataset_labels import GOOD, Correction, ExportFilter, Identity, Labelled, decide
from vision.samples import BoxLabel

logger = logging.getLogger(__name__)


MANIFEST_FILE = "export.jsonl"


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
