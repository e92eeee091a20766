"""Pascal VOC XML box annotations.

Layouts: ``ROOT/Annotations/*.xml`` with images in ``ROOT/JPEGImages/`` (or ``ROOT/images/``), or XML files
next to their images in ``ROOT``. An optional ``ROOT/classes.txt`` fixes the class order; objects of other
classes are then reported as unknown and skipped. VOC pixel coordinates are 1-based and inclusive, so a box
``xmin=1, xmax=W`` covers the whole width: x is normalized as ``(xmin - 1) / W`` and ``xmax / W``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.datasets.images import find_image, image_loader, image_size
from vision.datasets.labels import IssueLog, image_label, normalized_box, read_declared_classes
from vision.samples import BoxLabel, LabeledDataset, Sample

ANNOTATION_FOLDER = "Annotations"
IMAGE_FOLDERS = ("JPEGImages", "images", "Images")


def _text(node: ElementTree.Element, tag: str, xml_path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ConfigurationError(f"cannot read annotation file {xml_path}: <{tag}> is missing")
    return child.text.strip()


def _number(node: ElementTree.Element, tag: str, xml_path: Path) -> float:
    value = _text(node, tag, xml_path)
    try:
        return float(value)
    except ValueError as exc:
        raise ConfigurationError(f"cannot read annotation file {xml_path}: <{tag}> is {value!r}") from exc


def _annotation_files(root: Path) -> tuple[list[Path], list[Path]]:
    """The XML files and the folders to look for their images in."""
    annotations = root / ANNOTATION_FOLDER
    if annotations.is_dir():
        image_folders = [root / name for name in IMAGE_FOLDERS if (root / name).is_dir()] + [
            annotations,
            root,
        ]
        return sorted(annotations.glob("*.xml")), image_folders
    return sorted(root.glob("*.xml")), [root]


def _parse(
    xml_path: Path, image_folders: list[Path], declared: tuple[str, ...] | None, issues: IssueLog
) -> tuple[Path, list[BoxLabel]] | None:
    try:
        tree = ElementTree.parse(xml_path)
    except (ElementTree.ParseError, OSError) as exc:
        raise ConfigurationError(f"cannot read annotation file {xml_path}: {exc}") from exc
    node = tree.getroot()
    filename = node.findtext("filename", default="").strip() or xml_path.stem
    image_path = find_image(filename, image_folders) or find_image(xml_path.stem, image_folders)
    if image_path is None:
        issues.add("missing_image", xml_path, f"image {filename!r} not found")
        return None
    size = node.find("size")
    width = (
        int(_number(size, "width", xml_path)) if size is not None and size.find("width") is not None else 0
    )
    height = (
        int(_number(size, "height", xml_path)) if size is not None and size.find("height") is not None else 0
    )
    if width <= 0 or height <= 0:
        # Some tools write <size> as 0x0; the image itself knows.
        width, height = image_size(image_path)
    else:
        issues.declare_size(image_path, width, height)
    boxes: list[BoxLabel] = []
    for obj in node.findall("object"):
        label = _text(obj, "name", xml_path)
        if declared is not None and label not in declared:
            issues.add("unknown_class", xml_path, f"class {label!r} is not in classes.txt")
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ConfigurationError(
                f"cannot read annotation file {xml_path}: object {label!r} has no <bndbox>"
            )
        pixels = (
            _number(bndbox, "xmin", xml_path) - 1,
            _number(bndbox, "ymin", xml_path) - 1,
            _number(bndbox, "xmax", xml_path),
            _number(bndbox, "ymax", xml_path),
        )
        box = normalized_box(label, pixels, width, height, xml_path, issues)
        if box is not None:
            boxes.append(box)
    if not boxes:
        issues.add("empty_annotation", xml_path, "no objects (read as a good image)")
    return image_path, boxes


def load_voc_dataset(
    root: Path, task: Task = Task.DETECTION, issues: IssueLog | None = None, strict: bool = True
) -> LabeledDataset:
    """Load a VOC dataset; each sample's label is its most frequent box class, or ``good`` without boxes.

    ``strict=False`` (curation) records an unreadable annotation file as an issue and goes on instead of
    failing."""
    issues = issues if issues is not None else IssueLog()
    xml_files, image_folders = _annotation_files(root)
    if not xml_files:
        raise ConfigurationError(f"no VOC annotation files (*.xml) in {root} or {root / ANNOTATION_FOLDER}")
    declared = read_declared_classes(root)
    parsed: list[tuple[Path, Path, list[BoxLabel]]] = []
    for xml_path in xml_files:
        try:
            result = _parse(xml_path, image_folders, declared, issues)
        except ConfigurationError as exc:
            if strict:
                raise
            issues.add("unreadable_annotation", xml_path, str(exc))
            continue
        if result is not None:
            parsed.append((xml_path, *result))
    if not parsed:
        raise ConfigurationError(f"no images found for the VOC annotations in {root}")
    classes = declared or tuple(sorted({box.label for _, _, boxes in parsed for box in boxes}))
    samples = tuple(
        Sample(
            key=image_path.name,
            load_image=image_loader(image_path),
            label=image_label((b.label for b in boxes), classes),
            boxes=tuple(boxes),
            source_path=image_path,
        )
        for _, image_path, boxes in parsed
    )
    issues.log_summary(root)
    return LabeledDataset(task=task, classes=classes, samples=samples, description=f"Pascal VOC {root}")
