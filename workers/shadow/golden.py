"""Golden replay: a folder of frames with the verdicts they must get, replayed through an artifact on every
backend it ships, CI-style.

Layout: ``<folder>/<VERDICT>/<image>`` with VERDICT one of OK, UNCERTAIN, DEFECT (case-insensitive); any
image OpenCV reads. Each frame goes through the worker's own preprocessing and decoding
(:func:`workers.backends.load_model`, the model's thresholds from ``model.json``), so a verdict here is the
verdict a worker would give.

Two checks:

- *verdict diffs*: frames whose verdict (on the backend a worker serves, ONNX when exported) differs from
  the expected one;
- *parity*: when the artifact has both a Keras model and an ONNX export, the defect score of every frame on
  both; a difference above ``tolerance`` is a parity failure (exported graphs do drift from the checkpoint:
  fused ops, opset changes, float32 reductions in another order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from schemas.errors import ConfigurationError
from vision.preprocess import preprocess_batch

if TYPE_CHECKING:  # loaded by golden_replay: the backends pull in pydantic and the model runtimes
    from workers.backends import LoadedModel

VERDICT_FOLDERS = ("OK", "UNCERTAIN", "DEFECT")
DEFAULT_TOLERANCE = 5e-3  # vision.export.DEFAULT_TOLERANCE: the export's own parity bound
_BATCH = 16


@dataclass(frozen=True, slots=True)
class GoldenFrame:
    path: Path
    expected: str


def golden_frames(folder: Path) -> list[GoldenFrame]:
    """The frames of a golden folder, sorted (stable reports); ConfigurationError when there are none."""
    if not folder.is_dir():
        raise ConfigurationError(f"golden folder {folder} does not exist")
    frames: list[GoldenFrame] = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.upper() in VERDICT_FOLDERS:
            frames += [GoldenFrame(p, child.name.upper()) for p in sorted(child.iterdir()) if p.is_file()]
    if not frames:
        raise ConfigurationError(f"golden folder {folder} has no frames under {'/, '.join(VERDICT_FOLDERS)}/")
    return frames


def _read(frame: GoldenFrame) -> np.ndarray:
    import cv2

    image = cv2.imread(str(frame.path), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigurationError(f"golden frame {frame.path} is not an image OpenCV can read")
    return image


def _scores(model: LoadedModel, images: list[np.ndarray]) -> list[float]:
    spec = model.metadata.preprocess
    scores: list[float] = []
    for start in range(0, len(images), _BATCH):
        chunk = images[start : start + _BATCH]
        sizes = [(img.shape[1], img.shape[0]) for img in chunk]
        scores += [float(p.defect_score) for p in model.predict(preprocess_batch(chunk, spec), sizes)]
    return scores


def golden_replay(artifact: Path, folder: Path, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """The golden report of one artifact: verdict diffs and per-frame backend parity."""
    from vision.artifact import load_metadata  # the model runtimes load with the replay, not with the CLI
    from workers.backends import load_model
    from workers.verdicts import model_thresholds

    frames = golden_frames(folder)
    images = [_read(frame) for frame in frames]
    metadata = load_metadata(artifact)
    thresholds = model_thresholds(metadata)
    backends = [
        name for name, present in (("onnx", metadata.files.onnx), ("keras", metadata.files.keras)) if present
    ]
    if not backends:
        raise ConfigurationError(f"artifact {artifact} has neither an ONNX export nor a Keras model")
    scores = {name: _scores(load_model(artifact, name, 1), images) for name in backends}
    served = backends[0]
    diffs = []
    for frame, score in zip(frames, scores[served], strict=True):
        verdict = thresholds.verdict(score).value
        if verdict != frame.expected:
            diffs.append(
                {
                    "frame": frame.path.name,
                    "expected": frame.expected,
                    "got": verdict,
                    "score": round(score, 6),
                }
            )
    parity: dict[str, Any] = {"status": "not checked", "detail": "the artifact has one backend"}
    if len(backends) == 2:
        gaps = [abs(a - b) for a, b in zip(scores["onnx"], scores["keras"], strict=True)]
        failures = [
            {"frame": f.path.name, "onnx": round(a, 6), "keras": round(b, 6)}
            for f, a, b, gap in zip(frames, scores["onnx"], scores["keras"], gaps, strict=True)
            if gap > tolerance
        ]
        worst = max(gaps) if gaps else 0.0
        parity = {
            "status": "failed" if failures else "passed",
            "max_abs_diff": float(f"{worst:.3g}"),
            "tolerance": tolerance,
            "failures": failures,
            "detail": (
                f"{len(failures)} of {len(frames)} frames differ by more than {tolerance:g} "
                f"(worst {worst:.3g}, {failures[0]['frame']})"
                if failures
                else f"max |onnx - keras| {worst:.3g} over {len(frames)} frames"
            ),
        }
    return {
        "model": metadata.name,
        "version": metadata.version,
        "frames": len(frames),
        "served_backend": served,
        "thresholds": {"defect": thresholds.defect, "uncertain": thresholds.uncertain},
        "verdict_diffs": diffs,
        "parity": parity,
        "passed": not diffs and parity["status"] != "failed",
    }
