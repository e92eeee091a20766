"""Artifact metadata: validation, round trips and clear errors for broken artifacts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.artifact import (
    METADATA_FILE,
    ArtifactFiles,
    ModelMetadata,
    TrainingSummary,
    artifact_file,
    class_counts,
    fingerprint_dataset,
    load_metadata,
    new_version,
    save_artifact,
)
from vision.preprocess import PreprocessSpec
from vision.synthetic import synthetic_dataset


def _metadata(**overrides: object) -> ModelMetadata:
    fields: dict[str, object] = {
        "name": "surface-classifier",
        "version": "20261128.150000",
        "task": Task.CLASSIFICATION,
        "classes": ("good", "scratch", "spot"),
        "preprocess": PreprocessSpec.for_input(64, 48),
        "architecture": "tiny-cnn",
        "parameters": 1234,
        "thresholds": {"defect": 0.5},
        "training": TrainingSummary(dataset="synthetic", fingerprint="sha256:ab", samples=10, seed=3),
        "metrics": {"accuracy": 0.93, "per_class": {"good": {"f1": 0.9}}},
        "created_at": datetime(2026, 11, 28, 15, 0, tzinfo=UTC),
        "files": ArtifactFiles(keras=None),
    }
    fields.update(overrides)
    return ModelMetadata(**fields)  # type: ignore[arg-type]


class _FakeKerasModel:
    """Stands in for keras.Model.save: the artifact module only needs ``save(path)``."""

    def save(self, path: Path) -> None:
        Path(path).write_bytes(b"weights")


def test_metadata_round_trips_through_the_directory(tmp_path: Path) -> None:
    metadata = _metadata()
    save_artifact(tmp_path / "model", metadata)
    loaded = load_metadata(tmp_path / "model")
    assert loaded == metadata
    assert loaded.input_size == (64, 48) and loaded.channels == 3
    # The file itself can be named too.
    assert load_metadata(tmp_path / "model" / METADATA_FILE) == metadata


def test_saving_with_a_keras_model_writes_the_weights_file(tmp_path: Path) -> None:
    save_artifact(tmp_path, _metadata(files=ArtifactFiles()), keras_model=_FakeKerasModel())
    assert (tmp_path / "model.keras").read_bytes() == b"weights"
    assert artifact_file(tmp_path, "keras") == tmp_path / "model.keras"
    with pytest.raises(ConfigurationError, match="no onnx file"):
        artifact_file(tmp_path, "onnx")


def test_missing_artifact_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_metadata(tmp_path / "nope")
    with pytest.raises(ConfigurationError, match=r"model\.json is missing"):
        load_metadata(tmp_path)


def test_corrupt_json_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / METADATA_FILE).write_text("{not json")
    with pytest.raises(ConfigurationError, match="cannot read model metadata"):
        load_metadata(tmp_path)


def test_invalid_fields_are_named(tmp_path: Path) -> None:
    save_artifact(tmp_path, _metadata())
    raw = json.loads((tmp_path / METADATA_FILE).read_text())
    raw["task"] = "juggle"
    raw["preprocess"]["channels"] = 2
    (tmp_path / METADATA_FILE).write_text(json.dumps(raw))
    with pytest.raises(ConfigurationError) as caught:
        load_metadata(tmp_path)
    message = str(caught.value)
    assert "task" in message and "preprocess" in message


def test_listed_but_missing_weights_are_reported(tmp_path: Path) -> None:
    save_artifact(tmp_path, _metadata(files=ArtifactFiles(keras="model.keras", onnx="model.onnx")))
    with pytest.raises(ConfigurationError, match=r"keras file 'model\.keras', which is missing"):
        load_metadata(tmp_path)


def test_duplicate_classes_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        _metadata(classes=("good", "good"))
    with pytest.raises(ValueError, match="time zone"):
        _metadata(created_at=datetime(2026, 1, 1))


def test_fingerprint_follows_labels_not_object_identity() -> None:
    first = synthetic_dataset(20, Task.DETECTION, width=32, height=32, seed=1)
    again = synthetic_dataset(20, Task.DETECTION, width=32, height=32, seed=1)
    other = synthetic_dataset(20, Task.DETECTION, width=32, height=32, seed=2)
    assert fingerprint_dataset(first) == fingerprint_dataset(again)
    assert fingerprint_dataset(first) != fingerprint_dataset(other)
    assert fingerprint_dataset(first).startswith("sha256:")


def test_class_counts_count_images_and_boxes() -> None:
    dataset = synthetic_dataset(30, Task.DETECTION, width=32, height=32, seed=1, defect_rate=1.0)
    counts = class_counts(dataset)
    assert sum(v for k, v in counts.items() if not k.startswith("boxes:")) == 30
    assert sum(v for k, v in counts.items() if k.startswith("boxes:")) == sum(
        len(s.boxes) for s in dataset.samples
    )


def test_versions_sort_by_time() -> None:
    early = new_version(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = new_version(datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC))
    assert early == "20260102.030405" and early < late
