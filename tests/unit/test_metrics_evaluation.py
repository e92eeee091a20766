"""`lineguard evaluate`: scoring predictions per task, and the whole command on a real (tiny) ONNX model and a
real Keras model whose answers are known because their weights are set by hand."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from schemas.records import Detection
from schemas.vocabulary import Task
from vision.artifact import ArtifactFiles, ModelMetadata, save_artifact
from vision.evaluation import evaluate_predictions
from vision.outputs import Prediction, found_defect
from vision.preprocess import PreprocessSpec
from vision.report import write_report
from vision.samples import BoxLabel, LabeledDataset, Sample


def blank() -> np.ndarray:
    return np.zeros((4, 4), np.uint8)


def metadata_for(task: Task, classes: tuple[str, ...], files: ArtifactFiles | None = None) -> ModelMetadata:
    return ModelMetadata(
        name="probe",
        version="1",
        task=task,
        classes=classes,
        preprocess=PreprocessSpec.for_input(8, 8, channels=1),
        files=files or ArtifactFiles(keras=None),
    )


def prediction(scores: dict[str, float], defect: float, detections: tuple[Detection, ...] = ()) -> Prediction:
    return Prediction(
        class_scores=scores, detections=detections, anomaly_score=None, mask=None, defect_score=defect
    )


def test_classification_scores_and_defect_threshold() -> None:
    # Truth good, good, dent, dent; predicted good, dent, dent, dent: accuracy 3/4.
    # Defect scores 0.1, 0.6 (good parts), 0.7, 0.9 (dents): every dent outranks every good part -> AUROC 1,
    # and the max-F1 decision flags 0.7 and up (both dents, no good part): with margin, the threshold sits
    # halfway between 0.6 and 0.7.
    samples = [Sample(f"{i}", blank, label) for i, label in enumerate(["good", "good", "dent", "dent"])]
    predictions = [
        prediction({"good": 0.9, "dent": 0.1}, 0.1),
        prediction({"good": 0.4, "dent": 0.6}, 0.6),
        prediction({"good": 0.3, "dent": 0.7}, 0.7),
        prediction({"good": 0.1, "dent": 0.9}, 0.9),
    ]
    dataset = LabeledDataset(Task.CLASSIFICATION, ("good", "dent"), tuple(samples))
    evaluation = evaluate_predictions(
        dataset, predictions, metadata_for(Task.CLASSIFICATION, ("good", "dent")), 0.0
    )
    assert evaluation.metrics["accuracy"] == 0.75
    assert evaluation.metrics["confusion_matrix"] == [[1, 1], [0, 2]]
    defect = evaluation.metrics["defect_vs_good"]
    assert defect["auroc"] == 1.0
    assert defect["max_f1_threshold"]["threshold"] == pytest.approx(0.65)
    assert defect["max_f1_threshold"]["f1"] == 1.0
    assert defect["false_reject_threshold"]["false_reject_rate"] == 0.0


def test_detection_scores_match_the_hand_computed_ap() -> None:
    # The five-sixths case of test_metrics, split over two images: TP 0.9, FP 0.8, TP 0.7 over two GT boxes.
    truth_a = BoxLabel("scratch", 0, 0, 0.5, 0.5)
    truth_b = BoxLabel("scratch", 0.5, 0.5, 1, 1)
    samples = [Sample("a", blank, "scratch", (truth_a,)), Sample("b", blank, "scratch", (truth_b,))]
    predictions = [
        prediction({"scratch": 0.9}, 0.9, (found_defect("scratch", 0.9, 0, 0, 0.5, 0.5),)),
        prediction(
            {"scratch": 0.8},
            0.8,
            (found_defect("scratch", 0.8, 0, 0.5, 0.5, 1), found_defect("scratch", 0.7, 0.5, 0.5, 1, 1)),
        ),
    ]
    dataset = LabeledDataset(Task.DETECTION, ("scratch",), tuple(samples))
    evaluation = evaluate_predictions(dataset, predictions, metadata_for(Task.DETECTION, ("scratch",)))
    assert evaluation.metrics["map50"] == pytest.approx(5 / 6)
    assert evaluation.pr_curves["scratch"].precision.tolist() == pytest.approx([1, 0.5, 2 / 3])
    assert "auroc" not in evaluation.metrics["defect_vs_good"]  # no good image in this set


def test_segmentation_masks_are_scored_at_the_data_resolution(tmp_path: Path) -> None:
    # Truth: an 8x8 image whose left half (32 px) is class 1. The model predicts at 4x4 with its left quarter
    # (a 4x1 column) as class 1; enlarged (nearest) to 8x8 that is the left 8x2 strip: 16 px, all inside the
    # truth. IoU = 16 / 32 = 0.5, Dice = 2 * 16 / (16 + 32) = 2/3.
    truth = np.zeros((8, 8), np.uint8)
    truth[:, :4] = 1
    predicted = np.zeros((4, 4), np.uint8)
    predicted[:, 0] = 1
    sample = Sample("a", blank, "scratch", load_mask=lambda: truth)
    prediction = Prediction(
        class_scores={"scratch": 0.9}, detections=(), anomaly_score=None, mask=predicted, defect_score=0.9
    )
    dataset = LabeledDataset(Task.SEGMENTATION, ("scratch",), (sample,))
    evaluation = evaluate_predictions(dataset, [prediction], metadata_for(Task.SEGMENTATION, ("scratch",)))
    metrics = evaluation.metrics
    assert metrics["per_class"]["scratch"]["iou"] == pytest.approx(0.5)
    assert metrics["per_class"]["scratch"]["dice"] == pytest.approx(2 / 3)
    files = write_report(tmp_path, metadata_for(Task.SEGMENTATION, ("scratch",)), evaluation)
    assert sorted(f.name for f in files) == ["metrics.json", "report.md", "segmentation.png"]
    assert "| mean_iou | 0.5000 |" in (tmp_path / "report.md").read_text()


def test_mask_values_are_matched_by_class_name() -> None:
    # The data numbers crack 1 and scratch 2; the model numbers scratch 1 and crack 2. A model that finds the
    # scratch exactly must score IoU 1 on scratch however the two lists are ordered.
    truth = np.array([[2, 2], [0, 1]], np.uint8)  # data: scratch top row, crack bottom right
    predicted = np.array([[1, 1], [0, 2]], np.uint8)  # model: the same pixels in its own numbering
    sample = Sample("a", blank, "scratch", load_mask=lambda: truth)
    prediction = Prediction({"scratch": 1.0, "crack": 1.0}, (), None, predicted, 1.0)
    dataset = LabeledDataset(Task.SEGMENTATION, ("crack", "scratch"), (sample,))
    metrics = evaluate_predictions(
        dataset, [prediction], metadata_for(Task.SEGMENTATION, ("scratch", "crack"))
    ).metrics
    assert metrics["per_class"]["scratch"]["iou"] == 1.0 and metrics["per_class"]["crack"]["iou"] == 1.0


def test_anomaly_scores_give_auroc_and_a_false_reject_threshold() -> None:
    # Good parts score 0.1, 0.2, 0.3, 0.4; defects 0.35, 0.9. One good/defect pair is out of order
    # (0.4 > 0.35): AUROC = 7/8. With no good part allowed to be rejected, the threshold must be above 0.4
    # and catches only the 0.9 defect; with margin it sits halfway, at 0.65.
    scores = [0.1, 0.2, 0.3, 0.4, 0.35, 0.9]
    labels = ["good"] * 4 + ["scratch"] * 2
    samples = tuple(Sample(str(i), blank, label) for i, label in enumerate(labels))
    predictions = [Prediction({}, (), s, None, s) for s in scores]
    dataset = LabeledDataset(Task.ANOMALY, ("good", "scratch"), samples)
    evaluation = evaluate_predictions(
        dataset, predictions, metadata_for(Task.ANOMALY, ("good", "scratch")), 0.0
    )
    defect = evaluation.metrics["defect_vs_good"]
    assert defect["auroc"] == pytest.approx(7 / 8)
    assert defect["false_reject_threshold"]["recall"] == 0.5
    assert defect["false_reject_threshold"]["threshold"] == pytest.approx(0.65)
    assert evaluation.roc is not None and evaluation.roc.true_positive_rate[-1] == 1.0


def write_folder_dataset(root: Path) -> None:
    """Dark good parts and bright defective ones, grey and colour, of several sizes."""
    for i, (label, level) in enumerate(
        [("good", 30), ("good", 60), ("good", 90), ("dent", 170), ("dent", 230)]
    ):
        (root / label).mkdir(parents=True, exist_ok=True)
        shape = (20 + 7 * i, 30 + 5 * i) if i % 2 else (24, 24, 3)
        assert cv2.imwrite(str(root / label / f"{i}.png"), np.full(shape, level, np.uint8))


def brightness_onnx_model(path: Path) -> None:
    """A real ONNX graph: mean brightness m in [0, 1] -> logits (10 - 20 m, 20 m - 10) -> softmax, so an image
    brighter than mid-grey is a dent."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Unsqueeze", ["mean", "axis"], ["column"]),
            helper.make_node("MatMul", ["column", "weight"], ["scaled"]),
            helper.make_node("Add", ["scaled", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "brightness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        initializer=[
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
            helper.make_tensor("weight", TensorProto.FLOAT, [1, 2], [-20.0, 20.0]),
            helper.make_tensor("bias", TensorProto.FLOAT, [2], [10.0, -10.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_evaluate_command_with_an_onnx_artifact(tmp_path: Path) -> None:
    data, artifact, out = tmp_path / "data", tmp_path / "model", tmp_path / "report"
    write_folder_dataset(data)
    artifact.mkdir()
    brightness_onnx_model(artifact / "model.onnx")
    save_artifact(
        artifact,
        metadata_for(Task.CLASSIFICATION, ("good", "dent"), ArtifactFiles(keras=None, onnx="model.onnx")),
    )

    result = CliRunner().invoke(
        app, ["evaluate", "--model", str(artifact), "--data", str(data), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == {"name": "probe", "version": "1", "task": "classify"}
    assert metrics["data"]["samples"] == 5
    assert metrics["accuracy"] == 1.0
    assert metrics["confusion_matrix"] == [[3, 0], [0, 2]]
    assert metrics["defect_vs_good"]["auroc"] == 1.0
    for name in ("confusion_matrix.png", "roc.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 100 and image.std() > 0
    report = (out / "report.md").read_text()
    assert "![roc](roc.png)" in report
    # Examples are on by default; this model gets every image right, and the report says so.
    assert "No false rejects, escapes or task errors to show." in report


def test_evaluate_command_with_a_keras_artifact(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    data, artifact, out = tmp_path / "data", tmp_path / "model", tmp_path / "report"
    write_folder_dataset(data)
    inputs = keras.Input((8, 8, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.array([[-20.0, 20.0]], np.float32), np.array([10.0, -10.0], np.float32)])
    save_artifact(
        artifact, metadata_for(Task.CLASSIFICATION, ("good", "dent"), ArtifactFiles()), keras_model=model
    )

    result = CliRunner().invoke(
        app,
        ["evaluate", "--model", str(artifact), "--data", str(data), "--out", str(out), "--batch-size", "2"],
    )

    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == 1.0


def test_evaluate_rejects_data_of_another_task(tmp_path: Path) -> None:
    artifact = tmp_path / "model"
    artifact.mkdir()
    brightness_onnx_model(artifact / "model.onnx")
    save_artifact(
        artifact,
        metadata_for(Task.CLASSIFICATION, ("good", "dent"), ArtifactFiles(keras=None, onnx="model.onnx")),
    )
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(app, ["evaluate", "--model", str(artifact), "--data", str(tmp_path / "data")])
    assert result.exit_code != 0
    assert "no class folders" in str(result.exception)


def test_user_mistakes_exit_2_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "evaluate", "--model", str(tmp_path / "nope"), "--data", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: model artifact not found: {tmp_path / 'nope'}"]


def test_synthetic_evaluation_frames_are_held_out_from_training() -> None:
    from vision.artifact import TrainingSummary
    from vision.evaluation import held_out_synthetic_frames

    trained = metadata_for(Task.CLASSIFICATION, ("good", "dent")).model_copy(
        update={
            "training": TrainingSummary(
                dataset="synthetic mixed 80x64x3 seed=3 frames=0..599 defect_rate=0.5",
                fingerprint="sha256:0",
                samples=600,
                seed=3,
            )
        }
    )
    # Same seed (same distribution), first frame after the 600 it was trained on.
    assert held_out_synthetic_frames(trained) == (3, 600)
    assert held_out_synthetic_frames(metadata_for(Task.CLASSIFICATION, ("good", "dent"))) == (0, 1_000_000)
