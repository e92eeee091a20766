"""COCO JSON annotations: boxes for detection, polygons (or RLE) rasterised to masks for segmentation.

``PATH`` is the JSON file itself, or a folder holding exactly one ``*.json`` (directly or in
``annotations/``). Images are looked up by ``file_name`` next to the JSON, in ``images/`` and in the root.
Classes are the categories ordered by id; a mask pixel holds ``1 + index`` of its category in that order,
later annotations painting over earlier ones.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.datasets.images import find_image, image_loader
from vision.datasets.labels import IssueLog, image_label, normalized_box
from vision.samples import BoxLabel, LabeledDataset, Sample


def find_annotation_file(path: Path) -> Path:
    """The COCO JSON file that ``path`` names or holds."""
    if path.is_file():
        return path
    candidates = sorted(path.glob("*.json")) or sorted((path / "annotations").glob("*.json"))
    if not candidates:
        raise ConfigurationError(f"no COCO annotation file (*.json) in {path} or {path / 'annotations'}")
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        raise ConfigurationError(
            f"{path} holds several JSON files ({names}): pass the annotation file itself"
        )
    return candidates[0]


def decode_compressed_rle(counts: str) -> list[int]:
    """Decode COCO's compressed RLE string (pycocotools' ``rleFrString``) into run lengths."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            chunk = ord(counts[position]) - 48
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rle_to_mask(rle: dict[str, Any], height: int, width: int) -> np.ndarray:
    """A binary HxW mask from COCO RLE (runs alternate background/foreground in column-major order)."""
    counts = rle["counts"]
    runs = decode_compressed_rle(counts) if isinstance(counts, str) else [int(c) for c in counts]
    flat = np.zeros(height * width, dtype=np.uint8)
    position, value = 0, 0
    for run in runs:
        flat[position : position + run] = value
        position += run
        value ^= 1
    return flat.reshape((width, height)).T.copy()


def paint_segmentation(mask: np.ndarray, segmentation: Any, value: int) -> None:
    """Paint one annotation's polygons or RLE into ``mask`` with ``value``."""
    height, width = mask.shape
    if isinstance(segmentation, dict):
        mask[rle_to_mask(segmentation, height, width) > 0] = value
        return
    polygons = [
        np.round(np.asarray(poly, dtype=np.float64).reshape(-1, 2)).astype(np.int32)
        for poly in segmentation
        if len(poly) >= 6
    ]
    if polygons:
        cv2.fillPoly(mask, polygons, color=int(value))


def _mask_loader(
    annotations: list[dict[str, Any]], height: int, width: int, class_value: dict[int, int]
) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        mask = np.zeros((height, width), dtype=np.uint8)
        for ann in annotations:
            if ann.get("segmentation") and ann["category_id"] in class_value:
                paint_segmentation(mask, ann["segmentation"], class_value[ann["category_id"]])
        return mask

    return load


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read annotation file {path}: {exc}") from exc
    if not isinstance(document, dict) or "images" not in document or "categories" not in document:
        raise ConfigurationError(
            f"cannot read annotation file {path}: not COCO (needs 'images' and 'categories')"
        )
    return document


def load_coco_dataset(
    path: Path, task: Task = Task.DETECTION, issues: IssueLog | None = None
) -> LabeledDataset:
    """Load COCO boxes (and masks where annotations carry a segmentation)."""
    issues = issues if issues is not None else IssueLog()
    json_path = find_annotation_file(path)
    document = _read_json(json_path)
    try:
        categories = sorted(document["categories"], key=lambda c: c["id"])
        names = {c["id"]: str(c["name"]) for c in categories}
        classes = tuple(names[c["id"]] for c in categories)
        class_value = {c["id"]: i + 1 for i, c in enumerate(categories)}
        by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for ann in document.get("annotations", []):
            by_image[ann["image_id"]].append(ann)
        image_folders = [
            json_path.parent,
            json_path.parent / "images",
            path if path.is_dir() else json_path.parent,
        ]
        if json_path.parent.name == "annotations":
            image_folders += [json_path.parent.parent / "images", json_path.parent.parent]
        samples: list[Sample] = []
        for image in sorted(document["images"], key=lambda i: str(i["file_name"])):
            file_name, width, height = str(image["file_name"]), int(image["width"]), int(image["height"])
            image_path = find_image(file_name, [f for f in image_folders if f.is_dir()])
            if image_path is None:
                issues.add("missing_image", json_path, f"image {file_name!r} not found")
                continue
            issues.declare_size(image_path, width, height)
            boxes: list[BoxLabel] = []
            known: list[dict[str, Any]] = []
            for ann in by_image.get(image["id"], []):
                if ann["category_id"] not in names:
                    issues.add("unknown_class", json_path, f"{file_name}: category id {ann['category_id']}")
                    continue
                known.append(ann)
                x, y, w, h = (float(v) for v in ann["bbox"])
                box = normalized_box(
                    names[ann["category_id"]], (x, y, x + w, y + h), width, height, file_name, issues
                )
                if box is not None:
                    boxes.append(box)
            if not known:
                issues.add(
                    "empty_annotation", json_path, f"{file_name}: no annotations (read as a good image)"
                )
            has_masks = any(ann.get("segmentation") for ann in known)
            samples.append(
                Sample(
                    key=file_name,
                    load_image=image_loader(image_path),
                    label=image_label((b.label for b in boxes), classes),
                    boxes=tuple(boxes),
                    load_mask=_mask_loader(known, height, width, class_value)
                    if has_masks or not known
                    else None,
                    source_path=image_path,
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read annotation file {json_path}: malformed COCO field ({exc})"
        ) from exc
    if not samples:
        raise ConfigurationError(f"no images found for the COCO annotations in {json_path}")
    issues.log_summary(json_path)
    return LabeledDataset(task=task, classes=classes, samples=tuple(samples), description=f"COCO {json_path}")
