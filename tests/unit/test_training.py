"""Training: tiny models on small synthetic sets learn well above chance, and write usable artifacts.

Frames are 64x64 with defects drawn 2.5x their usual size (``defect_scale``), so a few hundred images and
a few epochs are enough to learn; each test trains for well under a minute on two cores.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.artifact import load_metadata
from vision.nets.blocks import ImageStandardization, inputs_prestandardized
from vision.nets.build import load_keras_model
from vision.preprocess import normalize, preprocess_batch
from vision.samples import LabeledDataset
from vision.synthetic import synthetic_dataset
from vision.training import TrainConfig, train_model
from vision.training_data import (
    frame_statistics,
    prepare,
    prestandardized,
    training_pipeline,
    validation_arrays,
)

pytestmark = pytest.mark.slow

CLASSES = ("spot", "stain", "dent")


def _dataset(task: Task, count: int = 600) -> LabeledDataset:
    return synthetic_dataset(count, task, width=64, height=64, seed=1, classes=CLASSES, defect_scale=2.5)


def _config(task: Task, epochs: int) -> TrainConfig:
    return TrainConfig(
        task=task,
        input_width=64,
        input_height=64,
        epochs=epochs,
        batch_size=32,
        learning_rate=3e-3,
        width=0.5,
        seed=1,
        patience=epochs,
        progress=False,
    )


def test_classifier_learns_and_writes_an_artifact(tmp_path: Path) -> None:
    dataset = _dataset(Task.CLASSIFICATION)
    result = train_model(dataset, _config(Task.CLASSIFICATION, epochs=5), tmp_path / "model")
    metrics = result.metadata.metrics
    # Half the frames are good: always answering "good" scores 0.5 and an AUROC of 0.5.
    assert metrics["accuracy"] > 0.62
    assert metrics["image_auroc"] > 0.8

    loaded = load_metadata(tmp_path / "model")
    assert loaded == result.metadata
    assert loaded.classes == ("good", *CLASSES)
    assert loaded.thresholds["defect"] == 0.5
    assert loaded.training is not None and loaded.training.fingerprint.startswith("sha256:")
    assert loaded.training.samples + loaded.training.validation_samples == len(dataset)
    assert (tmp_path / "model" / "model.keras").is_file()
    assert not (tmp_path / "model" / ".checkpoints").exists()


def test_detector_learns_boxes(tmp_path: Path) -> None:
    result = train_model(_dataset(Task.DETECTION), _config(Task.DETECTION, epochs=8), tmp_path)
    metrics = result.metadata.metrics
    # A detector that has learned nothing finds no box at IoU 0.5: mAP 0.
    assert metrics["map50"] > 0.08
    assert metrics["image_auroc"] > 0.8
    assert result.metadata.decoding["stride"] == 4
    # The best epoch was chosen by mAP on whole validation frames, logged after every epoch.
    assert result.metadata.training is not None
    assert len(result.history["val_map50"]) == result.metadata.training.epochs
    assert max(result.history["val_map50"]) > 0.0
    assert 0.0 < result.metadata.thresholds["defect"] < 1.0


def test_segmenter_learns_masks(tmp_path: Path) -> None:
    result = train_model(_dataset(Task.SEGMENTATION, 400), _config(Task.SEGMENTATION, epochs=5), tmp_path)
    # Predicting background everywhere gives a defect IoU of 0.
    assert result.metadata.metrics["defect_iou"] > 0.2


def test_anomaly_model_learns_from_good_images_only(tmp_path: Path) -> None:
    # The default method (good images + simulated defects). Seeded and deterministic: seed 1 scores 0.954
    # on every run here; seeds 2 and 3 score 0.973 and 0.944, so 0.85 leaves a wide margin for other CPUs'
    # round-off. The old autoencoder default scored 0.74 on this set.
    dataset = _dataset(Task.ANOMALY)
    result = train_model(dataset, _config(Task.ANOMALY, epochs=6), tmp_path)
    training = result.metadata.training
    assert training is not None and set(training.class_counts) == {"good"}
    assert result.metadata.architecture == "lineguard-simulated-defect-unet"
    metrics, thresholds = result.metadata.metrics, result.metadata.thresholds
    assert metrics["image_auroc"] > 0.85
    # Good-only threshold within its budget on the validation's good images; the mask uses the same cut.
    assert metrics["good_only_false_reject_rate"] <= 0.01 + 1e-9
    assert thresholds["pixel"] == thresholds["defect"]
    # What a server does: load the saved model without the training code's custom loss.
    served = load_keras_model(tmp_path / "model.keras")
    assert served.output_shape == (None, 64, 64, 1)


def test_autoencoder_stays_an_anomaly_option(tmp_path: Path) -> None:
    config = replace(_config(Task.ANOMALY, epochs=1), anomaly_method="autoencoder")
    result = train_model(_dataset(Task.ANOMALY, 96), config, tmp_path)
    assert result.metadata.architecture == "lineguard-conv-autoencoder"
    assert result.metadata.training is not None
    assert result.metadata.training.hyperparameters["anomaly_method"] == "autoencoder"
    assert result.metadata.thresholds["defect"] > 0.0


def test_training_sees_exactly_the_serving_preprocessing() -> None:
    dataset = synthetic_dataset(8, Task.CLASSIFICATION, width=80, height=64, seed=2)
    config = TrainConfig(
        task=Task.CLASSIFICATION, input_width=48, input_height=40, augment=False, batch_size=8
    )
    spec = config.preprocess_spec()
    served = preprocess_batch([s.load_image() for s in dataset.samples], spec)

    prepared = prepare(dataset, spec, Task.CLASSIFICATION)
    validation_x, _ = validation_arrays(prepared, dataset.classes, spec, Task.CLASSIFICATION)
    np.testing.assert_array_equal(validation_x, served)

    x, y = next(iter(training_pipeline(prepared, dataset.classes, spec, config)))
    trained = x.numpy()
    # The pipeline shuffles: every training input must be one of the served inputs, with its label.
    for row, label in zip(trained, y.numpy(), strict=True):
        match = [i for i in range(len(served)) if np.array_equal(row, served[i])]
        assert len(match) == 1
        assert dataset.classes[int(label)] == dataset.samples[match[0]].label


def test_crop_training_feeds_crops_and_serves_the_whole_input(tmp_path: Path) -> None:
    # Segmentation frames 96x64, crops 32x32: batches are crops with their masks cut alike, and the saved
    # model takes the whole 96x64 input.
    dataset = synthetic_dataset(64, Task.SEGMENTATION, width=96, height=64, seed=4, classes=CLASSES)
    config = replace(
        _config(Task.SEGMENTATION, epochs=1), input_width=96, input_height=64, crop=(32, 32), augment=False
    )
    prepared = prepare(dataset, config.preprocess_spec(), Task.SEGMENTATION)
    x, y = next(iter(training_pipeline(prepared, dataset.classes, config.training_spec(), config)))
    assert x.shape == (32, 32, 32, 3) and y.shape == (32, 32, 32, 1)
    # Every crop is a window of what the served network's first layer makes of its whole frame (the
    # frame standardized with its own statistics, not the crop with the crop's), and its mask is the same
    # window of the frame's mask.
    frames = np.asarray(ImageStandardization()(normalize(prepared.pixels, config.preprocess_spec())))
    assert prepared.masks is not None
    for crop, crop_mask in zip(x.numpy(), y.numpy()[..., 0], strict=True):
        windows = [
            (i, top, left)
            for i in range(len(frames))
            for top in range(64 - 32 + 1)
            for left in range(96 - 32 + 1)
            if abs(frames[i, top, left, 0] - crop[0, 0, 0]) < 1e-4
            and np.allclose(frames[i, top : top + 32, left : left + 32], crop, atol=1e-4)
        ]
        assert windows, "a training crop that is no window of any prepared frame"
        i, top, left = windows[0]
        np.testing.assert_array_equal(crop_mask, prepared.masks[i, top : top + 32, left : left + 32])

    result = train_model(dataset, config, tmp_path)
    assert result.metadata.training is not None
    assert result.metadata.training.hyperparameters["crop"] == "32x32"
    served = load_keras_model(tmp_path / "model.keras")
    assert served.input_shape == (None, 64, 96, 3)
    assert served.output_shape[1:3] == (64, 96)
    assert served.get_layer("standardize").passthrough is False  # the served model standardizes frames


def test_crops_are_standardized_with_their_frames_statistics() -> None:
    # A 1x4 grey frame [0, 2, 4, 6]: mean 3, variance 5. Its right half [4, 6] standardized with the
    # frame's statistics is [1, 3] / sqrt(5 + 1e-6), not the crop's own [-1, 1].
    frame = np.array([[[0.0], [2.0], [4.0], [6.0]]], np.float32)
    stats = frame_statistics(frame)
    np.testing.assert_allclose(stats, [[3.0], [np.sqrt(5.0 + 1e-6)]])
    crop = prestandardized(frame[:, 2:], stats)
    np.testing.assert_allclose(crop[0, :, 0], np.array([1.0, 3.0]) / np.sqrt(5.0 + 1e-6), rtol=1e-6)
    assert prestandardized(frame, None) is frame  # whole frames: the network standardizes them itself
    # Inside inputs_prestandardized the layer passes inputs through; elsewhere it standardizes.
    with inputs_prestandardized():
        fitted_layer = ImageStandardization()
    np.testing.assert_array_equal(np.asarray(fitted_layer(frame[None])), frame[None])
    served = np.asarray(ImageStandardization()(frame[None]))
    np.testing.assert_allclose(served[0, 0, 2:, 0], crop[0, :, 0], rtol=1e-5)


def test_a_crop_larger_than_the_input_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="larger than the input"):
        TrainConfig(task=Task.ANOMALY, input_width=64, input_height=64, crop=(96, 32))


def test_too_little_data_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="fewer than one batch"):
        train_model(_dataset(Task.CLASSIFICATION, 20), _config(Task.CLASSIFICATION, epochs=1), tmp_path)
    with pytest.raises(ConfigurationError, match="labelled for detect"):
        train_model(_dataset(Task.DETECTION, 20), _config(Task.CLASSIFICATION, epochs=1), tmp_path)


def test_cli_trains_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "cli-model"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lineguard.cli",
            "train",
            "--task",
            "classify",
            "--data",
            "synthetic:96",
            "--input-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--width",
            "0.5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    metadata = load_metadata(out)
    assert metadata.files.onnx == "model.onnx"
    assert "synthetic:96" in (metadata.training.command if metadata.training else "")
    assert "max |onnx - keras|" in completed.stdout
    assert "recipe: input 32x32 (given); channels 3 (the default); up to 1 epochs" in completed.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--input-size", "10"], "must be N or WxH"),
        (["--data", "synthetic:zero"], "synthetic:N"),
        (["--task", "detect", "--input-size", "40"], "multiple of 16"),
        (["--task", "anomaly", "--input-size", "64", "--crop", "96x32"], "larger than --input-size"),
        (["--task", "segment", "--input-size", "64", "--crop", "40"], "--crop for segment must be"),
        (["--crop", "32"], "a classifier sees the whole frame"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(tmp_path: Path, arguments: list[str], message: str) -> None:
    base = {"--task": "classify", "--data": "synthetic:50", "--out": str(tmp_path)}
    for flag, value in zip(arguments[::2], arguments[1::2], strict=True):
        base[flag] = value
    command = [sys.executable, "-m", "lineguard.cli", "train"]
    for flag, value in base.items():
        command += [flag, value]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
