"""Measure `lineguard dataset check` throughput on camera-sized frames.

    .venv/bin/python bench/bench_curation.py [--images 200] [--size 1280x1024] [--workers 1 2] [--json]

Writes synthetic surfaces (JPEG, quality 90) into a temporary folder-per-class dataset, plants a few exact
and near duplicates so every check has work to do, then times `check_dataset` (read, SHA-256, decode,
truncation check, sharpness, exposure, dHash + pHash, duplicate grouping) once per worker count. Prints
images/s, MB/s and whether the planted duplicates were found; ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2


def build_dataset(root: Path, count: int, width: int, height: int) -> int:
    """``count`` JPEG frames under good/ and defect/; the last 4 are 2 exact and 2 near copies."""
    from vision.synthetic import SyntheticDefectGenerator

    generator = SyntheticDefectGenerator(width=width, height=height, defect_rate=0.3, seed=3)
    total = 0
    for index in range(count - 4):
        sample = generator.generate(index)
        folder = root / ("good" if sample.label == "good" else "defect")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:06d}.jpg"
        assert sample.image is not None
        cv2.imwrite(str(path), sample.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        total += path.stat().st_size
    originals = sorted(root.glob("*/*.jpg"))[:2]
    for i, original in enumerate(originals):
        (original.parent / f"exact-{i}.jpg").write_bytes(original.read_bytes())
        image = cv2.imread(str(original))
        assert image is not None
        cv2.imwrite(str(original.parent / f"near-{i}.jpg"), cv2.convertScaleAbs(image, alpha=1.0, beta=4))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="1280x1024")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from vision.curation import CheckConfig, check_dataset

    results: dict[str, Any] = {"images": args.images, "size": args.size, "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        size_bytes = build_dataset(root, args.images, width, height)
        results["dataset_mb"] = round(size_bytes / 1e6, 1)
        for workers in args.workers:
            started = time.perf_counter()
            report = check_dataset(root, config=CheckConfig(workers=workers))
            elapsed = time.perf_counter() - started
            summary = report.summary()
            results[f"workers_{workers}"] = {
                "seconds": round(elapsed, 2),
                "images_per_s": round(report.images / elapsed, 1),
                "mb_per_s": round(size_bytes / 1e6 / elapsed, 1),
                "exact_duplicate_groups": summary.get("exact_duplicate", 0),
                "near_duplicate_groups": summary.get("near_duplicate", 0),
            }
    if args.json:
        print(json.dumps(results))
        return
    print(f"{args.images} frames of {args.size} JPEG ({results['dataset_mb']} MB)")
    for workers in args.workers:
        r = results[f"workers_{workers}"]
        print(
            f"  {workers} worker(s): {r['images_per_s']} images/s, {r['mb_per_s']} MB/s "
            f"({r['seconds']} s); duplicate groups found: exact {r['exact_duplicate_groups']}, "
            f"near {r['near_duplicate_groups']}"
        )


if __name__ == "__main__":
    main()
