"""``lineguard dataset check``: scan a dataset for the problems a vision team cleans out of large image
batches, and report them without changing anything.

Severity says what to do: ``error`` findings (unreadable or truncated images, exact duplicates, labels that
cannot be right) should be fixed before training; ``warning`` findings (near duplicates, blur, bad exposure,
clipped boxes, imbalance) deserve a look; ``info`` findings are facts (an image without annotations is a good
image in detection data).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.curation.hashing import dhash, near_duplicate_groups, phash, sha256_hex
from vision.curation.quality import exposure, measurement_copy, sharpness, truncation_problem
from vision.datasets import DatasetFormat
from vision.datasets.coco import load_coco_dataset
from vision.datasets.folder import load_folder_dataset
from vision.datasets.goodonly import load_good_only_dataset
from vision.datasets.images import ImageReadError, decode_image
from vision.datasets.labels import IssueLog
from vision.datasets.masks import load_mask_dataset
from vision.datasets.voc import load_voc_dataset
from vision.samples import LabeledDataset, Sample


class Severity(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"


LABEL_ISSUE_SEVERITY: dict[str, Severity] = {
    "box_outside_image": Severity.warning,
    "degenerate_box": Severity.error,
    "unknown_class": Severity.error,
    "missing_image": Severity.error,
    "unreadable_annotation": Severity.error,
    "empty_annotation": Severity.info,
    "missing_mask": Severity.info,
}

# Findings whose files `dataset clean` moves by default: nothing about them is worth keeping in training data.
DEFAULT_CLEAN_KINDS = ("corrupt", "truncated", "exact_duplicate")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem. ``paths`` are relative to the dataset root; for duplicate groups the first is the copy
    that ``clean`` keeps."""

    kind: str
    severity: Severity
    paths: tuple[str, ...]
    detail: str


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """Thresholds of the checks (defaults suit 8-bit line-scan and area cameras)."""

    near_duplicate_distance: int = 4  # bits of 64, on both dHash and pHash
    blur_relative: float = 0.2  # sharper than this share of the class median, or it is blurred
    blur_absolute: float = 5.0  # Laplacian variance below this is blurred whatever the class
    dark_mean: float = 25.0
    bright_mean: float = 230.0
    clipped_fraction: float = 0.4  # share of crushed or blown-out pixels that makes an image badly exposed
    imbalance_ratio: float = 10.0  # largest class / smallest class above this is imbalanced
    min_class_images: int = 10
    workers: int = 2


@dataclass(frozen=True, slots=True)
class ImageStats:
    """What the scanner measured on one image (``problem`` set when it could not be read)."""

    index: int
    sha256: str
    problem: tuple[str, str] | None = None  # (kind, detail)
    decoded: bool = False
    width: int = 0
    height: int = 0
    sharpness: float = 0.0
    mean: float = 0.0
    dark_fraction: float = 0.0
    bright_fraction: float = 0.0
    dhash: int = 0
    phash: int = 0


@dataclass
class CurationReport:
    root: str
    format: str
    task: str
    images: int
    class_counts: dict[str, int]
    findings: list[Finding] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.error for f in self.findings)

    def summary(self) -> dict[str, int]:
        """Number of findings per kind."""
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "format": self.format,
            "task": self.task,
            "images": self.images,
            "class_counts": self.class_counts,
            "summary": self.summary(),
            "findings": [
                {**asdict(f), "paths": list(f.paths), "severity": f.severity.value} for f in self.findings
            ],
        }


DEFAULT_TASK = {
    DatasetFormat.folder: Task.CLASSIFICATION,
    DatasetFormat.voc: Task.DETECTION,
    DatasetFormat.coco: Task.DETECTION,
    DatasetFormat.masks: Task.SEGMENTATION,
    DatasetFormat.goodonly: Task.ANOMALY,
}


def detect_format(path: Path) -> DatasetFormat:
    """The layout of the dataset at ``path`` (folder-per-class when nothing more specific fits)."""
    if path.is_file() and path.suffix.lower() == ".json":
        return DatasetFormat.coco
    if (path / "Annotations").is_dir() or any(path.glob("*.xml")):
        return DatasetFormat.voc
    if (path / "images").is_dir() and (path / "masks").is_dir():
        return DatasetFormat.masks
    if any(path.glob("*.json")) or any((path / "annotations").glob("*.json")):
        return DatasetFormat.coco
    return DatasetFormat.folder


def load_for_curation(path: Path, fmt: DatasetFormat, issues: IssueLog) -> LabeledDataset:
    """Load with every label problem recorded in ``issues`` rather than raised where the loader allows."""
    if not path.exists():
        raise ConfigurationError(f"dataset path {path} does not exist")
    if fmt is DatasetFormat.voc:
        return load_voc_dataset(path, issues=issues, strict=False)
    if fmt is DatasetFormat.coco:
        return load_coco_dataset(path, issues=issues)
    if fmt is DatasetFormat.masks:
        return load_mask_dataset(path, issues=issues, strict=False)
    if fmt is DatasetFormat.goodonly:
        return load_good_only_dataset(path)

    return load_folder_dataset(path)


def measure_image(index: int, path: Path) -> ImageStats:
    """Read one file and measure it; unreadable files come back with ``problem`` set."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageStats(index, "", ("corrupt", f"cannot read: {exc.strerror or exc}"))
    digest = sha256_hex(data)
    truncated = truncation_problem(data)
    try:
        image = decode_image(data, str(path))
    except ImageReadError:
        if truncated:
            return ImageStats(index, digest, ("truncated", f"{truncated}, not decodable"))
        return ImageStats(index, digest, ("corrupt", "not a decodable image"))
    grey = measurement_copy(image)
    light = exposure(grey)
    return ImageStats(
        index=index,
        sha256=digest,
        problem=("truncated", truncated) if truncated else None,
        sharpness=sharpness(grey),
        mean=light.mean,
        dark_fraction=light.dark_fraction,
        bright_fraction=light.bright_fraction,
        dhash=dhash(image),
        phash=phash(image),
        decoded=True,
        width=image.shape[1],
        height=image.shape[0],
    )


def check_dataset(
    path: Path,
    fmt: DatasetFormat | None = None,
    config: CheckConfig | None = None,
    on_image: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> CurationReport:
    """Scan the dataset at ``path``; ``on_start(total)`` and ``on_image(1)`` drive a progress bar."""
    config = config or CheckConfig()
    fmt = fmt or detect_format(path)
    issues = IssueLog()
    dataset = load_for_curation(path, fmt, issues)
    root = path.parent if path.is_file() else path
    samples = [s for s in dataset.samples if s.source_path is not None]
    paths = [s.source_path for s in samples if s.source_path is not None]  # every one, typed as a Path
    names = [_relative(p, root) for p in paths]
    if on_start is not None:
        on_start(len(samples))

    def measure(index: int) -> ImageStats:
        stats = measure_image(index, paths[index])
        if on_image is not None:
            on_image(1)
        return stats

    # OpenCV releases the GIL while decoding and filtering, so threads keep the cores busy.
    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        stats = list(pool.map(measure, range(len(samples))))

    labels = [s.label for s in samples]
    report = CurationReport(
        root=str(path),
        format=fmt.value,
        task=DEFAULT_TASK[fmt].value,
        images=len(samples),
        class_counts=dict(sorted(Counter(labels).items())),
    )
    findings = report.findings
    for stat in stats:
        if stat.problem is not None:
            kind, detail = stat.problem
            findings.append(Finding(kind, Severity.error, (names[stat.index],), detail))
    readable = [s for s in stats if s.decoded]
    findings += _duplicates(stats, names, labels, readable, config)
    findings += _quality(readable, names, labels, config)
    for issue in issues.issues:
        file = _relative(Path(issue.file), root) if Path(issue.file).is_absolute() else issue.file
        findings.append(
            Finding(issue.kind, LABEL_ISSUE_SEVERITY.get(issue.kind, Severity.warning), (file,), issue.detail)
        )
    findings += _sizes(samples, names, readable, issues, fmt)
    findings += _balance(report.class_counts, config)
    return report


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _duplicates(
    stats: list[ImageStats],
    names: list[str],
    labels: list[str],
    readable: list[ImageStats],
    config: CheckConfig,
) -> list[Finding]:
    findings: list[Finding] = []
    by_digest: dict[str, list[int]] = defaultdict(list)
    for stat in stats:
        if stat.sha256:
            by_digest[stat.sha256].append(stat.index)
    exact_groups = [sorted(g, key=lambda i: names[i]) for g in by_digest.values() if len(g) > 1]
    for group in sorted(exact_groups, key=lambda g: names[g[0]]):
        group_labels = sorted({labels[i] for i in group})
        detail = f"{len(group)} identical files"
        if len(group_labels) > 1:
            findings.append(
                Finding(
                    "conflicting_labels",
                    Severity.error,
                    tuple(names[i] for i in group),
                    f"the same image is labelled {', '.join(group_labels)}",
                )
            )
        findings.append(Finding("exact_duplicate", Severity.error, tuple(names[i] for i in group), detail))
    # Near duplicates among distinct files: one representative per exact-duplicate group.
    first_of_digest = {stat.sha256: stat for stat in reversed(readable)}
    unique = sorted(first_of_digest.values(), key=lambda s: names[s.index])
    groups = near_duplicate_groups(
        [s.dhash for s in unique], [s.phash for s in unique], config.near_duplicate_distance
    )
    for group in groups:
        members = [unique[i].index for i in group]
        group_labels = sorted({labels[i] for i in members})
        detail = f"{len(members)} look-alike images"
        if len(group_labels) > 1:
            detail += f" with different labels ({', '.join(group_labels)})"
        findings.append(Finding("near_duplicate", Severity.warning, tuple(names[i] for i in members), detail))
    return findings


def _quality(
    readable: list[ImageStats], names: list[str], labels: list[str], config: CheckConfig
) -> list[Finding]:
    findings: list[Finding] = []
    by_label: dict[str, list[float]] = defaultdict(list)
    for stat in readable:
        by_label[labels[stat.index]].append(stat.sharpness)
    # A class median needs a few images to mean anything.
    medians = {label: statistics.median(values) for label, values in by_label.items() if len(values) >= 5}
    for stat in readable:
        name = names[stat.index]
        median = medians.get(labels[stat.index])
        if stat.sharpness < config.blur_absolute or (
            median and stat.sharpness < config.blur_relative * median
        ):
            reference = f", class median {median:.1f}" if median else ""
            findings.append(
                Finding(
                    "blurry", Severity.warning, (name,), f"Laplacian variance {stat.sharpness:.1f}{reference}"
                )
            )
        if stat.mean < config.dark_mean or stat.dark_fraction > config.clipped_fraction:
            findings.append(
                Finding(
                    "underexposed",
                    Severity.warning,
                    (name,),
                    f"mean {stat.mean:.0f}, {stat.dark_fraction:.0%} crushed black",
                )
            )
        if stat.mean > config.bright_mean or stat.bright_fraction > config.clipped_fraction:
            findings.append(
                Finding(
                    "overexposed",
                    Severity.warning,
                    (name,),
                    f"mean {stat.mean:.0f}, {stat.bright_fraction:.0%} blown out",
                )
            )
    return findings


def _sizes(
    samples: list[Sample], names: list[str], readable: list[ImageStats], issues: IssueLog, fmt: DatasetFormat
) -> list[Finding]:
    """Annotations made for another resolution: a VOC/COCO declared size or a mask of another shape."""
    findings: list[Finding] = []
    for stat in readable:
        sample = samples[stat.index]
        actual = (stat.width, stat.height)
        declared = issues.declared_sizes.get(str(sample.source_path))
        if declared is not None and declared != actual:
            detail = f"annotation says {declared[0]}x{declared[1]}, image is {actual[0]}x{actual[1]}"
            findings.append(Finding("size_mismatch", Severity.error, (names[stat.index],), detail))
        elif fmt in (DatasetFormat.masks, DatasetFormat.goodonly) and sample.load_mask is not None:
            try:
                mask_height, mask_width = sample.load_mask().shape[:2]
            except ImageReadError as exc:  # a ground-truth mask of good-only data (masks/ ones fail at load)
                findings.append(Finding("corrupt_mask", Severity.error, (names[stat.index],), str(exc)))
                continue
            if (mask_width, mask_height) != actual:
                detail = f"mask is {mask_width}x{mask_height}, image is {actual[0]}x{actual[1]}"
                findings.append(Finding("size_mismatch", Severity.error, (names[stat.index],), detail))
    return findings


def _balance(counts: dict[str, int], config: CheckConfig) -> list[Finding]:
    findings: list[Finding] = []
    if len(counts) > 1:
        largest, smallest = max(counts.values()), min(counts.values())
        if smallest and largest / smallest > config.imbalance_ratio:
            detail = ", ".join(f"{label} {n}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            findings.append(
                Finding(
                    "class_imbalance",
                    Severity.warning,
                    (),
                    f"largest/smallest = {largest / smallest:.1f}: {detail}",
                )
            )
    for label, n in sorted(counts.items()):
        if n < config.min_class_images:
            findings.append(Finding("rare_class", Severity.warning, (), f"{label}: only {n} images"))
    return findings
