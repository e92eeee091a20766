"""The model artifact: a directory that training writes and every backend, evaluator and registry reads.

Layout::

    <artifact>/
        model.json     metadata (this module): task, classes, preprocessing, output decoding, thresholds,
                       training data summary and fingerprint, metrics, code version, creation time
        model.keras    Keras 3 weights + architecture (TensorFlow backends, fine-tuning)
        model.onnx     optional export for ONNX Runtime (see ``vision.export``)

Only the metadata is read here, so ONNX Runtime workers load artifacts without importing TensorFlow.
A missing or corrupt artifact raises :class:`~schemas.errors.ConfigurationError` naming path and problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import ConfigurationError
from schemas.vocabulary import MODEL_TASKS, Task
from vision.preprocess import PreprocessSpec
from vision.samples import LabeledDataset

METADATA_FILE = "model.json"
KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
FORMAT_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrainingSummary(_Frozen):
    """What a model was trained on and how, enough to reproduce or audit it."""

    dataset: str
    fingerprint: str
    samples: int = Field(ge=0)
    validation_samples: int = Field(default=0, ge=0)
    class_counts: dict[str, int] = Field(default_factory=dict)
    epochs: int = Field(default=0, ge=0)
    seed: int | None = None
    duration_s: float = Field(default=0.0, ge=0.0)
    command: str = ""
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class ArtifactFiles(_Frozen):
    """File names inside the artifact directory (relative)."""

    keras: str | None = KERAS_FILE
    onnx: str | None = None


class ModelMetadata(_Frozen):
    """Validated contents of ``model.json``.

    ``thresholds`` are the model's default decision thresholds (workers may override them per line or
    camera). ``defect`` is the image-level threshold on ``Prediction.defect_score`` for every task (training
    calibrates it on validation data); ``pixel`` (optional) turns an anomaly map into a mask. ``decoding``
    holds the parameters that turn raw outputs into predictions (``vision.outputs``), e.g. the detector's
    output stride.
    """

    format_version: int = FORMAT_VERSION
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    task: Task
    classes: tuple[str, ...] = Field(min_length=1)
    preprocess: PreprocessSpec
    architecture: str = ""
    parameters: int = Field(default=0, ge=0)
    decoding: dict[str, float | int | str] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    training: TrainingSummary | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    code_version: str = ""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    files: ArtifactFiles = Field(default_factory=ArtifactFiles)

    @model_validator(mode="after")
    def _check(self) -> ModelMetadata:
        if self.format_version > FORMAT_VERSION:
            raise ValueError(
                f"artifact format {self.format_version} is newer than this lineguard reads ({FORMAT_VERSION})"
            )
        if self.task not in MODEL_TASKS:  # UNKNOWN is for records written by a newer schema, not models
            raise ValueError(
                f"task must be one of {', '.join(t.value for t in MODEL_TASKS)}, got {self.task}"
            )
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate class names in {list(self.classes)}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must carry a time zone")
        return self

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input."""
        return (self.preprocess.width, self.preprocess.height)

    @property
    def channels(self) -> int:
        return self.preprocess.channels

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"


class SavableModel(Protocol):
    """What :func:`save_artifact` needs of a model: Keras' ``save(path)``."""

    def save(self, filepath: Path) -> object: ...


def save_artifact(
    directory: str | Path, metadata: ModelMetadata, keras_model: SavableModel | None = None
) -> Path:
    """Write an artifact directory: the Keras model (when given; anything with Keras' ``save(path)``) and
    ``model.json``. The metadata is written last, through a temporary file, so a reader never sees metadata
    that points at weights still being written."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if keras_model is not None:
        keras_name = metadata.files.keras or KERAS_FILE
        keras_model.save(root / keras_name)
        if metadata.files.keras != keras_name:
            metadata = metadata.model_copy(
                update={"files": metadata.files.model_copy(update={"keras": keras_name})}
            )
    write_metadata(root, metadata)
    return root


def write_metadata(directory: str | Path, metadata: ModelMetadata) -> Path:
    """Atomically (re)write ``model.json`` in ``directory``."""
    path = Path(directory) / METADATA_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(metadata.to_json(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_metadata(path: str | Path) -> ModelMetadata:
    """Read and validate an artifact's metadata. ``path`` is the artifact directory or its ``model.json``."""
    given = Path(path)
    file = given / METADATA_FILE if given.is_dir() else given
    if not file.exists():
        if not given.exists():
            raise ConfigurationError(f"model artifact not found: {given}")
        raise ConfigurationError(f"{given} is not a model artifact: {METADATA_FILE} is missing")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read model metadata {file}: {exc}") from exc
    try:
        metadata = ModelMetadata.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid model metadata {file}: {problems}") from exc
    for kind, name in (("keras", metadata.files.keras), ("onnx", metadata.files.onnx)):
        if name is not None and not (file.parent / name).is_file():
            raise ConfigurationError(
                f"model artifact {file.parent} lists {kind} file {name!r}, which is missing"
            )
    return metadata


def artifact_file(directory: str | Path, kind: str) -> Path:
    """Path of the artifact's ``keras`` or ``onnx`` file; ConfigurationError if the artifact has none."""
    root = Path(directory)
    metadata = load_metadata(root)
    name = {"keras": metadata.files.keras, "onnx": metadata.files.onnx}.get(kind)
    if name is None:
        raise ConfigurationError(f"model artifact {root} has no {kind} file (export it first)")
    return root / name


def fingerprint_dataset(dataset: LabeledDataset) -> str:
    """A SHA-256 over the dataset's description, classes and every sample's key, label and boxes.

    Cheap (no pixels are read), and it changes whenever the sample list or its labels change. It does not see
    an image file edited in place under the same name; the curation tools catch corrupt files instead.
    """
    digest = hashlib.sha256()
    digest.update(f"{dataset.task.value}|{dataset.description}|{','.join(dataset.classes)}\n".encode())
    for sample in dataset.samples:
        boxes = ";".join(
            f"{b.label}:{b.x_min:.5f},{b.y_min:.5f},{b.x_max:.5f},{b.y_max:.5f}" for b in sample.boxes
        )
        digest.update(f"{sample.key}|{sample.label}|{boxes}\n".encode())
    return "sha256:" + digest.hexdigest()


def class_counts(dataset: LabeledDataset) -> dict[str, int]:
    """Image-level label counts (detection/segmentation: also box counts per class, as ``boxes:<class>``)."""
    counts: Counter[str] = Counter(sample.label for sample in dataset.samples)
    for sample in dataset.samples:
        for box in sample.boxes:
            counts[f"boxes:{box.label}"] += 1
    return dict(sorted(counts.items()))


def code_version() -> str:
    """lineguard's package version plus the git commit of the work tree, when there is one."""
    try:
        version = package_metadata.version("lineguard")
    except package_metadata.PackageNotFoundError:
        version = "0+unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


def new_version(now: datetime | None = None) -> str:
    """A sortable version string from the creation time (UTC), e.g. ``20261128.152500``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d.%H%M%S")
