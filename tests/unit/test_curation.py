"""`lineguard dataset check|clean` on datasets with planted problems: every planted problem is found on the
right file, clean files are left alone, and clean moves (never deletes) with a manifest restore undoes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from vision.curation import CurationReport, check_dataset, quarantine, restore
from vision.curation.hashing import dhash, hamming, near_duplicate_groups, phash
from vision.curation.quality import truncation_problem
from vision.datasets import load_dataset


def pattern(seed: int, size: int = 96) -> np.ndarray:
    """A distinct surface: a smooth random shading (what perceptual hashes see) plus fine sensor texture."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(
        rng.uniform(40, 210, (6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC
    )
    texture = rng.normal(0, 12, (size, size)).astype(np.float32)
    return np.clip(coarse + texture, 0, 255).astype(np.uint8)


def write(path: Path, image: np.ndarray, params: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image, params or [])
    return path


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    root = tmp_path / "parts"
    for i in range(14):
        write(root / "good" / f"a{i:02d}.png", pattern(i))
    # Exact copy of a00; a re-encoded, slightly brighter copy of a01; a02 also filed under "scratch".
    (root / "good" / "copy.png").write_bytes((root / "good" / "a00.png").read_bytes())
    write(
        root / "good" / "near.jpg",
        np.clip(pattern(1).astype(np.int16) + 6, 0, 255).astype(np.uint8),
        [cv2.IMWRITE_JPEG_QUALITY, 85],
    )
    (root / "scratch").mkdir()
    (root / "scratch" / "dupe.png").write_bytes((root / "good" / "a02.png").read_bytes())
    write(root / "scratch" / "s0.png", pattern(100))
    write(root / "good" / "blurry.png", cv2.GaussianBlur(pattern(101), (0, 0), 4))
    write(root / "good" / "dark.png", (pattern(102) * 0.08).astype(np.uint8))
    write(root / "good" / "bright.png", np.clip(pattern(103).astype(np.int16) + 200, 0, 255).astype(np.uint8))
    (root / "good" / "corrupt.png").write_bytes(b"this is not a png")
    jpeg = cv2.imencode(".jpg", pattern(104))[1].tobytes()
    (root / "good" / "trunc.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    return root


def kinds_by_file(report: CurationReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        for path in finding.paths:
            found.setdefault(path, set()).add(finding.kind)
    return found


def test_check_finds_every_planted_problem_and_nothing_else(planted: Path) -> None:
    report = check_dataset(planted)

    found = kinds_by_file(report)
    assert report.format == "folder" and report.images == 23
    assert "corrupt" in found["good/corrupt.png"]
    assert "truncated" in found["good/trunc.jpg"]
    assert "exact_duplicate" in found["good/copy.png"] and "exact_duplicate" in found["good/a00.png"]
    assert {"exact_duplicate", "conflicting_labels"} <= found["scratch/dupe.png"]
    assert "near_duplicate" in found["good/near.jpg"] and "near_duplicate" in found["good/a01.png"]
    assert "blurry" in found["good/blurry.png"]
    assert "underexposed" in found["good/dark.png"]
    assert "overexposed" in found["good/bright.png"]
    untouched = [f"good/a{i:02d}.png" for i in range(3, 14)] + ["scratch/s0.png"]
    assert [name for name in untouched if name in found] == []
    summary = report.summary()
    assert summary["class_imbalance"] == 1  # 21 good against 2 scratch
    assert summary["rare_class"] == 1
    assert report.has_errors
    exact = next(f for f in report.findings if f.kind == "exact_duplicate" and "good/copy.png" in f.paths)
    assert exact.paths == ("good/a00.png", "good/copy.png")  # the first is the one clean keeps


def test_clean_quarantines_with_a_manifest_and_restore_undoes_it(planted: Path) -> None:
    report = check_dataset(planted)
    target, moves = quarantine(report, ["corrupt", "truncated", "exact_duplicate"])

    moved = sorted(m.original for m in moves)
    assert moved == ["good/copy.png", "good/corrupt.png", "good/trunc.jpg", "scratch/dupe.png"]
    assert target.parent == planted / "_quarantine"
    for name in moved:
        assert not (planted / name).exists() and (target / name).is_file()
    manifest = json.loads((target / "manifest.json").read_text())
    assert {m["original"]: m["kind"] for m in manifest["moves"]}["good/copy.png"] == "exact_duplicate"
    # The loaders skip the quarantine, and what is left has no error-level problems.
    assert len(load_dataset(planted, "classify", "folder")) == 19
    assert not check_dataset(planted).has_errors

    assert sorted(restore(target)) == moved
    assert all((planted / name).is_file() for name in moved)


def test_voc_label_problems_and_companion_annotations(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        write(root / "JPEGImages" / f"{name}.png", pattern(seed, 40))
    (root / "JPEGImages" / "b.png").write_bytes((root / "JPEGImages" / "a.png").read_bytes())
    (root / "classes.txt").write_text("scratch\n")
    ann = root / "Annotations"
    ann.mkdir()
    box = (
        "<object><name>{}</name><bndbox><xmin>{}</xmin><ymin>1</ymin><xmax>{}</xmax><ymax>9</ymax></bndbox>"
        "</object>"
    )
    size = "<size><width>40</width><height>40</height></size>"
    (ann / "a.xml").write_text(
        f"<annotation><filename>a.png</filename>{size}{box.format('scratch', 30, 55)}</annotation>"
    )
    (ann / "b.xml").write_text(
        f"<annotation><filename>b.png</filename>{size}{box.format('blob', 1, 5)}</annotation>"
    )
    (ann / "c.xml").write_text("<annotation><filename>c.png</filename>")
    (ann / "d.xml").write_text(f"<annotation><filename>gone.png</filename>{size}</annotation>")

    report = check_dataset(root)

    assert report.format == "voc"
    kinds = {(f.kind, f.severity.value) for f in report.findings}
    assert {
        ("box_outside_image", "warning"),
        ("unknown_class", "error"),
        ("empty_annotation", "info"),
        ("unreadable_annotation", "error"),
        ("missing_image", "error"),
        ("exact_duplicate", "error"),
    } <= kinds
    _, moves = quarantine(report, ["exact_duplicate"])
    assert [(m.original, m.companion_of) for m in moves] == [
        ("JPEGImages/b.png", None),
        ("Annotations/b.xml", "JPEGImages/b.png"),
    ]
    assert not (ann / "b.xml").exists()


def test_check_and_clean_commands(planted: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    json_path = tmp_path / "out" / "check.json"
    result = runner.invoke(app, ["dataset", "check", str(planted), "--json-out", str(json_path)])
    assert result.exit_code == 1, result.output  # error-level problems gate a pipeline
    assert json.loads(json_path.read_text())["summary"]["corrupt"] == 1

    dry = runner.invoke(app, ["dataset", "clean", str(planted), "--dry-run"])
    assert dry.exit_code == 0 and (planted / "good" / "corrupt.png").exists()
    assert not (planted / "_quarantine").exists()

    result = runner.invoke(app, ["dataset", "clean", str(planted), "--kinds", "all"])
    assert result.exit_code == 0, result.output
    assert not (planted / "good" / "blurry.png").exists()
    assert runner.invoke(app, ["dataset", "check", str(planted)]).exit_code == 0


def test_perceptual_hashes_tolerate_reencoding_but_separate_different_parts() -> None:
    image = pattern(5, 200)
    smaller = cv2.resize(image, (150, 150), interpolation=cv2.INTER_AREA)
    reencoded = cv2.imdecode(
        cv2.imencode(".jpg", smaller, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_GRAYSCALE
    )
    assert reencoded is not None
    assert hamming(dhash(image), dhash(reencoded)) <= 4 and hamming(phash(image), phash(reencoded)) <= 4
    others = [pattern(seed, 200) for seed in range(20, 40)]
    assert all(hamming(dhash(image), dhash(o)) > 8 for o in others)


def test_near_duplicate_grouping_is_transitive_and_exact() -> None:
    # 0 ~ 1 (2 bits) and 1 ~ 2 (2 bits) -> one group {0, 1, 2} although 0 and 2 differ by 4 bits > 3.
    # 3 is far from everything.
    hashes = [0b0000, 0b0011, 0b1111, (1 << 63) | (1 << 40) | 0xFFFF0000]
    assert near_duplicate_groups(hashes, hashes, max_distance=3) == [[0, 1, 2]]
    assert near_duplicate_groups(hashes, hashes, max_distance=1) == []
    # Thousands of blank frames hash alike: one group, found without comparing every pair.
    blank = [0] * 5000 + [0xFFFF_FFFF_0000_0000]
    assert near_duplicate_groups(blank, blank, max_distance=4) == [list(range(5000))]


def test_truncation_markers() -> None:
    jpeg = cv2.imencode(".jpg", pattern(1, 32))[1].tobytes()
    png = cv2.imencode(".png", pattern(1, 32))[1].tobytes()
    assert truncation_problem(jpeg) is None and truncation_problem(png) is None
    assert "truncated" in (truncation_problem(jpeg[:-10]) or "")
    assert "truncated" in (truncation_problem(png[:-20]) or "")
    assert truncation_problem(b"not an image at all") is None  # corrupt, but not a cut-short JPEG or PNG


def test_annotations_made_for_another_resolution(tmp_path: Path) -> None:
    voc = tmp_path / "voc"
    write(voc / "a.png", pattern(1, 40))
    write(voc / "b.png", pattern(2, 40))
    obj = (
        "<object><name>s</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
        "</object>"
    )
    for name, size in (("a", 40), ("b", 80)):  # b.xml was made for an 80x80 version of the image
        (voc / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.png</filename><size><width>{size}</width><height>{size}</height>"
            f"</size>{obj}</annotation>"
        )
    mismatches = [f for f in check_dataset(voc).findings if f.kind == "size_mismatch"]
    assert [(f.paths, f.detail) for f in mismatches] == [
        (("b.png",), "annotation says 80x80, image is 40x40")
    ]

    masks = tmp_path / "masks"
    for name in ("a", "b", "c"):
        write(masks / "images" / f"{name}.png", pattern(3, 32))
    write(masks / "masks" / "a.png", np.zeros((32, 32), np.uint8))
    write(masks / "masks" / "b.png", np.full((16, 16), 255, np.uint8))  # half the resolution
    (masks / "masks" / "c.png").write_bytes(b"not a png")
    report = check_dataset(masks)
    kinds = {(f.kind, f.paths) for f in report.findings}
    assert ("size_mismatch", ("images/b.png",)) in kinds
    assert ("unreadable_annotation", (str(Path("masks") / "c.png"),)) in kinds
    assert report.images == 2  # c.png is left out with its unreadable mask


def test_coco_and_good_only_layouts(tmp_path: Path) -> None:
    coco = tmp_path / "coco"
    write(coco / "images" / "a.png", pattern(1, 30))
    document = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 30, "height": 30},
            {"id": 2, "file_name": "gone.png", "width": 30, "height": 30},
        ],
        "categories": [{"id": 1, "name": "stain"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 20, 20, 5]},  # runs off the right edge
            {"id": 2, "image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5]},
        ],
    }
    (coco / "annotations.json").write_text(json.dumps(document))
    report = check_dataset(coco)
    assert report.format == "coco"
    assert {f.kind for f in report.findings} >= {"box_outside_image", "unknown_class", "missing_image"}

    anomaly = tmp_path / "mvtec"
    for i in range(3):
        write(anomaly / "good" / f"g{i}.png", pattern(10 + i, 30))
    write(anomaly / "crack" / "c0.png", pattern(20, 30))
    (anomaly / "ground_truth" / "crack").mkdir(parents=True)
    (anomaly / "ground_truth" / "crack" / "c0_mask.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    from vision.datasets import DatasetFormat

    report = check_dataset(anomaly, DatasetFormat.goodonly)
    assert report.class_counts == {"crack": 1, "good": 3}
    assert [(f.kind, f.paths) for f in report.findings if f.severity.value == "error"] == [
        ("corrupt_mask", ("crack/c0.png",))
    ]
