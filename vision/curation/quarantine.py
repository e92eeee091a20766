"""``lineguard dataset clean``: move problem images out of a dataset into a quarantine folder, never delete.

Files keep their path relative to the dataset root inside the quarantine, next to ``manifest.json`` that lists
every move with its reason, so a person can review the decision and :func:`restore` undoes it. Annotation
companions travel with their image (a VOC ``.xml``, a segmentation mask), so what stays behind is a consistent
dataset. The default quarantine lives inside the dataset under ``_quarantine/``, which the loaders skip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.errors import ConfigurationError
from vision.curation.scan import CurationReport, Finding

QUARANTINE_FOLDER = "_quarantine"
MANIFEST_FILE = "manifest.json"

# For groups of copies, the first path (sorted) stays and the others go.
GROUP_KINDS = frozenset({"exact_duplicate", "near_duplicate"})
IMAGE_KINDS = frozenset(
    {"corrupt", "truncated", "blurry", "underexposed", "overexposed", "conflicting_labels"}
)
CLEANABLE_KINDS = GROUP_KINDS | IMAGE_KINDS


@dataclass(frozen=True, slots=True)
class Move:
    """One file moved into quarantine (``companion_of`` names the image an annotation file belongs to)."""

    original: str
    quarantined: str
    kind: str
    detail: str
    companion_of: str | None = None


def _files_to_move(finding: Finding) -> tuple[str, ...]:
    if finding.kind in GROUP_KINDS:
        return finding.paths[1:]
    return finding.paths if finding.kind in IMAGE_KINDS else ()


def companions(root: Path, image: Path) -> list[Path]:
    """Annotation files that belong to ``image`` (VOC XML, segmentation or ground-truth masks)."""
    stem = image.stem
    candidates = [
        root / "Annotations" / f"{stem}.xml",
        image.with_suffix(".xml"),
        root / "masks" / f"{stem}.png",
        root / "masks" / f"{stem}_mask.png",
        root / "ground_truth" / image.parent.name / f"{stem}_mask.png",
    ]
    return [c for c in dict.fromkeys(candidates) if c.is_file() and c != image]


def _free_destination(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        n += 1
    return candidate


def plan_moves(report: CurationReport, kinds: Iterable[str]) -> list[tuple[str, str, str]]:
    """(relative path, kind, detail) of every image the chosen kinds of findings would move, once each."""
    wanted = set(kinds)
    unknown = wanted - CLEANABLE_KINDS
    if unknown:
        raise ConfigurationError(
            f"cannot clean {', '.join(sorted(unknown))}: choose from {', '.join(sorted(CLEANABLE_KINDS))}"
        )
    planned: dict[str, tuple[str, str]] = {}
    for finding in report.findings:
        if finding.kind in wanted:
            for name in _files_to_move(finding):
                planned.setdefault(name, (finding.kind, finding.detail))
    return [(name, kind, detail) for name, (kind, detail) in sorted(planned.items())]


def quarantine(
    report: CurationReport, kinds: Iterable[str], destination: Path | None = None, dry_run: bool = False
) -> tuple[Path, list[Move]]:
    """Move the files of the chosen findings into ``destination`` (default
    ``<root>/_quarantine/<UTC time>/``) and write its manifest; ``dry_run`` only plans."""
    root = Path(report.root)
    root = root.parent if root.is_file() else root
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = destination or root / QUARANTINE_FOLDER / stamp
    moves: list[Move] = []
    for name, kind, detail in plan_moves(report, kinds):
        image = root / name
        if not image.exists():
            continue  # moved already, e.g. as a companion
        for source, companion_of in [(image, None), *((c, name) for c in companions(root, image))]:
            relative = source.relative_to(root) if source.is_relative_to(root) else Path(source.name)
            destination_path = _free_destination(target / relative)
            moves.append(
                Move(str(relative), str(destination_path.relative_to(target)), kind, detail, companion_of)
            )
            if not dry_run:
                destination_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), str(destination_path))
    if not dry_run and moves:
        manifest = {
            "created_at": datetime.now(UTC).isoformat(),
            "dataset": str(root.resolve()),
            "moves": [asdict(m) for m in moves],
        }
        (target / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target, moves


def restore(quarantine_dir: Path) -> list[str]:
    """Move everything a quarantine's manifest lists back where it came from; returns the restored paths.
    A file whose original place is taken again stays in quarantine (reported, not overwritten)."""
    manifest_path = quarantine_dir / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read quarantine manifest {manifest_path}: {exc}") from exc
    root = Path(manifest["dataset"])
    restored: list[str] = []
    for move in manifest["moves"]:
        source, original = quarantine_dir / move["quarantined"], root / move["original"]
        if source.exists() and not original.exists():
            original.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), str(original))
            restored.append(move["original"])
    remaining = [p for p in quarantine_dir.rglob("*") if p.is_file() and p.name != MANIFEST_FILE]
    if not remaining:
        os.replace(manifest_path, quarantine_dir / f"{MANIFEST_FILE}.restored")
    return restored
