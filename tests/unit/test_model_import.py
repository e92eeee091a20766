"""`lineguard models import` on ONNX models built here (no downloads), served by the real worker backend.

The YOLO-style model: NCHW input, a 1x1 convolution scoring "scratch" by the red channel and "spot" by the
blue one, global average pooling, and a head ``[N, 4+K, 3]`` with three fixed anchor boxes (input pixels):
anchor 0 carries scratch, anchor 1 spot, anchor 2 nothing. Colour order, layout, letterbox and the box
decoding all change which box comes out where, so each is checked by what the worker predicts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.model_import import ImportOptions, check_parity, import_onnx, parse_normalization
from vision.preprocess import preprocess_batch
from workers.backends import load_model

SIZE = 64
CLASSES = ("scratch", "spot")
# cx, cy, w, h in input pixels, one column per anchor
ANCHORS = np.array([[32, 32, 48], [16, 48, 48], [32, 32, 8], [16, 16, 8]], dtype=np.float32)


def _save(graph: Any, path: Path) -> Path:
    import onnx

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _class_logits_nodes() -> tuple[list[Any], list[Any]]:
    """input [N,3,H,W] (RGB, 0-1) -> 'logits' [N,2]: 20 * (mean(R) - 0.5), 20 * (mean(B) - 0.5)."""
    weight = np.zeros((2, 3, 1, 1), np.float32)
    weight[0, 0] = 20.0  # R
    weight[1, 2] = 20.0  # B
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.array([-10.0, -10.0], np.float32), "b"),
        numpy_helper.from_array(np.array([0, 2], np.int64), "nk"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"]),
        helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "nk"], ["logits"]),
    ]
    return nodes, inits


def yolo_model(path: Path) -> Path:
    nodes, inits = _class_logits_nodes()
    mask = np.array([[1, 0, 0], [0, 1, 0]], np.float32)[None]  # [1, K, A]: which anchor carries which class
    inits += [
        numpy_helper.from_array(ANCHORS[None], "anchors"),
        numpy_helper.from_array(mask, "mask"),
        numpy_helper.from_array(np.array([0, 2, 1], np.int64), "nk1"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
    ]
    nodes += [
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
        helper.make_node("Reshape", ["probs", "nk1"], ["probs3"]),
        helper.make_node("Mul", ["probs3", "mask"], ["scores"]),  # [N, K, A]
        helper.make_node("ReduceSum", ["probs3", "axes12"], ["per_image"], keepdims=1),  # [N, 1, 1]
        helper.make_node("Mul", ["per_image", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "anchors"], ["boxes"]),  # [N, 4, A]
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),  # [N, 4+K, A]
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-yolo",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, 3])],
        inits,
    )
    return _save(graph, path)


def classifier_model(path: Path) -> Path:
    """NCHW logits [N, 3] over (good, scratch, spot): good's logit is a constant 0."""
    nodes, inits = _class_logits_nodes()
    inits += [numpy_helper.from_array(np.zeros((1, 1), np.float32), "good")]
    nodes += [
        helper.make_node("Mul", ["logits", "good"], ["times_zero"]),
        helper.make_node("Slice", ["times_zero", "s0", "s1", "s_axis"], ["good_logit"]),  # [N, 1] of 0
        helper.make_node("Concat", ["good_logit", "logits"], ["scores"], axis=1),
    ]
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([1], np.int64), "s1"),
        numpy_helper.from_array(np.array([1], np.int64), "s_axis"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
        inits,
    )
    return _save(graph, path)


def bgr_frame(width: int, height: int, bgr: tuple[int, int, int]) -> np.ndarray:
    return np.full((height, width, 3), bgr, np.uint8)


RED = (0, 0, 255)  # OpenCV frames are BGR
BLUE = (255, 0, 0)


def yolo_options(**changes: object) -> ImportOptions:
    fields: dict[str, object] = dict(task=Task.DETECTION, classes=CLASSES, output="yolo", name="tiny-yolo")
    fields.update(changes)
    return ImportOptions(**fields)  # type: ignore[arg-type]


def test_a_yolo_head_becomes_boxes_through_the_worker_backend(tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    report = import_onnx(yolo_model(tmp_path / "yolo.onnx"), artifact, yolo_options())
    assert report.output_shape[1:] == (6, 3) and report.max_abs_diff <= 1e-5
    model = load_model(artifact, "auto", threads=1, device="auto")
    assert model.backend.name == "onnxruntime"
    frames = [bgr_frame(SIZE, SIZE, RED), bgr_frame(SIZE, SIZE, BLUE), bgr_frame(SIZE, SIZE, (0, 0, 0))]
    red, blue, black = model.predict(preprocess_batch(frames, model.metadata.preprocess))
    assert [d.label for d in red.detections] == ["scratch"]
    found = red.detections[0]
    box = found.box
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx((0.25, 0.125, 0.75, 0.375))
    assert found.score > 0.99 and red.defect_score > 0.99
    assert [d.label for d in blue.detections] == ["spot"]
    assert (blue.detections[0].box.y_min, blue.detections[0].box.y_max) == pytest.approx((0.625, 0.875))
    assert black.detections == () and black.defect_score < 0.01
    assert check_parity(artifact) <= 1e-5


def test_colour_order_decides_which_class_a_red_frame_is(tmp_path: Path) -> None:
    artifact = tmp_path / "bgr"
    import_onnx(yolo_model(tmp_path / "yolo.onnx"), artifact, yolo_options(color="bgr"))
    model = load_model(artifact, "onnx", threads=1)
    (red,) = model.predict(preprocess_batch([bgr_frame(SIZE, SIZE, RED)], model.metadata.preprocess))
    # Declared BGR: the model's "R" input plane is the frame's blue one, so red reads as a spot.
    assert [d.label for d in red.detections] == ["spot"]


def test_letterboxed_boxes_are_mapped_back_onto_the_image(tmp_path: Path) -> None:
    artifact = tmp_path / "letterbox"
    import_onnx(yolo_model(tmp_path / "yolo.onnx"), artifact, yolo_options(resize="letterbox"))
    model = load_model(artifact, "onnx", threads=1)
    spec = model.metadata.preprocess
    assert spec.resize == "letterbox"
    wide = bgr_frame(128, 64, RED)  # 2:1 -> 64x32 content, 16 px of padding above and below
    tensor = preprocess_batch([wide], spec)
    assert tensor[0, 0, 0, 0] == pytest.approx(114 / 255) and tensor[0, 32, 0, 0] == pytest.approx(1.0)
    (prediction,) = model.predict(tensor, [(128, 64)])
    box = prediction.detections[0].box
    assert len(prediction.detections) == 1
    # anchor 0 (input y 8..24 of 64) lies in the padding and the content's top: clipped to y 0..0.25
    assert (box.x_min, box.x_max) == pytest.approx((0.25, 0.75))
    assert (box.y_min, box.y_max) == pytest.approx((0.0, 0.25))
    (unmapped,) = model.predict(tensor)
    assert unmapped.detections[0].box.y_min == pytest.approx(0.125)


def test_an_nchw_logits_classifier_gets_its_softmax_in_the_graph(tmp_path: Path) -> None:
    artifact = tmp_path / "classifier"
    report = import_onnx(
        classifier_model(tmp_path / "cls.onnx"),
        artifact,
        ImportOptions(task=Task.CLASSIFICATION, classes=("good", "scratch", "spot"), output="logits"),
    )
    assert report.output_shape[1:] == (3,)
    model = load_model(artifact, "onnx", threads=1)
    frames = [bgr_frame(80, 64, RED), bgr_frame(80, 64, (0, 0, 0))]
    red, black = model.predict(preprocess_batch(frames, model.metadata.preprocess))
    assert sum(red.class_scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(red.class_scores, key=red.class_scores.__getitem__) == "scratch"
    assert max(black.class_scores, key=black.class_scores.__getitem__) == "good"
    assert red.defect_score > 0.99 and black.defect_score < 0.01


def test_options_that_do_not_fit_the_model_are_one_clear_error(tmp_path: Path) -> None:
    source = yolo_model(tmp_path / "yolo.onnx")
    with pytest.raises(ConfigurationError, match=r"fits neither \[N, 7, anchors\]"):
        import_onnx(source, tmp_path / "a", yolo_options(classes=("a", "b", "c")))
    with pytest.raises(ConfigurationError, match="channels in NHWC"):
        import_onnx(source, tmp_path / "b", yolo_options(layout="nhwc"))
    with pytest.raises(ConfigurationError, match="does not fit --task detect"):
        import_onnx(source, tmp_path / "c", yolo_options(output="softmax"))
    with pytest.raises(ConfigurationError, match="model file not found"):
        import_onnx(tmp_path / "missing.onnx", tmp_path / "d", yolo_options())
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="cannot read ONNX model"):
        import_onnx(tmp_path / "junk.onnx", tmp_path / "e", yolo_options())
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_normalization_names_and_explicit_values() -> None:
    assert parse_normalization("imagenet", 3)[1] == (0.485, 0.456, 0.406)
    assert parse_normalization("scale=1,mean=127.5,std=127.5", 3) == (1.0, (127.5,) * 3, (127.5,) * 3)
    with pytest.raises(ConfigurationError, match="--normalize"):
        parse_normalization("zscore", 3)


def test_the_cli_imports_and_publishes_then_the_registry_serves_it(tmp_path: Path) -> None:
    from lineguard.cli import app

    source = yolo_model(tmp_path / "yolo.onnx")
    registry = tmp_path / "registry"
    args = ["models", "import", str(source), "--task", "detect", "--classes", "scratch,spot"]
    args += ["--output", "yolo", "--layout", "nchw", "--color", "rgb", "--normalize", "0-1"]
    args += ["--resize", "stretch", "--out", str(tmp_path / "art"), "--version", "1.0.0"]
    result = CliRunner().invoke(app, [*args, "--publish", "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    assert "published yolo 1.0.0" in result.output
    from vision.registry import open_registry

    fetched = open_registry(str(registry)).fetch("yolo", "1.0.0")
    model = load_model(fetched, "onnx", threads=1)
    (red,) = model.predict(preprocess_batch([bgr_frame(SIZE, SIZE, RED)], model.metadata.preprocess))
    assert [d.label for d in red.detections] == ["scratch"]
    bad_args = [*args[:-4], "--out", str(tmp_path / "x"), "--layout", "nhwcx"]
    bad = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", *bad_args], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "--layout 'nhwcx': choose one of nchw, nhwc" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and not (tmp_path / "x").exists()
