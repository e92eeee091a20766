"""Other foreign heads through the import and the worker backend: a YOLOv5-style head with objectness
logits, and an NCHW segmentation head with per-pixel logits (letterboxed, so its mask is cropped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from schemas.vocabulary import Task
from tests.unit.test_model_import import RED, SIZE, _class_logits_nodes, _save, bgr_frame
from vision.model_import import ImportOptions, import_onnx
from vision.preprocess import preprocess_batch
from workers.backends import load_model


def yolov5_model(path: Path) -> Path:
    """[N, 2 anchors, 5 + 2]: rows cx, cy, w, h (fractions), objectness logit, class logits."""
    nodes, inits = _class_logits_nodes()  # 'logits' [N, 2]: scratch by red, spot by blue
    boxes = np.array([[0.5, 0.5, 0.5, 0.25], [0.25, 0.25, 0.1, 0.1]], np.float32)[None]  # [1, 2, 4]
    objectness = np.array([[[8.0], [-8.0]]], np.float32)  # anchor 0 is an object, anchor 1 is not
    inits += [
        numpy_helper.from_array(boxes, "boxes"),
        numpy_helper.from_array(objectness, "objectness"),
        numpy_helper.from_array(np.array([0, 1, 2], np.int64), "n12"),
        numpy_helper.from_array(np.ones((1, 2, 1), np.float32), "two_anchors"),
    ]
    nodes += [
        helper.make_node("Reshape", ["logits", "n12"], ["cls_row"]),  # [N, 1, 2]
        helper.make_node("Mul", ["cls_row", "two_anchors"], ["cls"]),  # [N, 2, 2]
        helper.make_node("Mul", ["cls", "two_anchors"], ["cls_again"]),
        helper.make_node("Slice", ["cls_again", "z", "one", "two"], ["first_cls"]),  # [N, 2, 1]
        helper.make_node("Mul", ["first_cls", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "boxes"], ["batch_boxes"]),  # [N, 2, 4]
        helper.make_node("Add", ["nothing", "objectness"], ["batch_obj"]),  # [N, 2, 1]
        helper.make_node("Concat", ["batch_boxes", "batch_obj", "cls"], ["output0"], axis=2),
    ]
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "z"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([2], np.int64), "two"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
    ]
    return _save(_graph(nodes, inits, "output0", ["batch", 2, 7]), path)


def mask_model(path: Path) -> Path:
    """[N, 3, H, W] logits over (background, scratch, spot): scratch where red, spot where blue."""
    weight = np.zeros((3, 3, 1, 1), np.float32)
    weight[1, 0] = weight[2, 2] = 20.0
    bias = np.array([0.0, -10.0, -10.0], np.float32)
    inits: list[Any] = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["masks"])]
    return _save(_graph(nodes, inits, "masks", ["batch", 3, SIZE, SIZE]), path)


def _graph(nodes: list[Any], inits: list[Any], output: str, shape: list[Any]) -> Any:
    return helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
        inits,
    )


def test_a_yolov5_head_multiplies_objectness_and_class_scores(tmp_path: Path) -> None:
    artifact = tmp_path / "v5"
    options = ImportOptions(
        task=Task.DETECTION, classes=("scratch", "spot"), output="yolo", logits=True, box_units="normalized"
    )
    report = import_onnx(yolov5_model(tmp_path / "v5.onnx"), artifact, options)
    assert report.metadata.metrics["import"]["yolo_style"] == "v5"
    model = load_model(artifact, "onnx", threads=1)
    (red,) = model.predict(preprocess_batch([bgr_frame(SIZE, SIZE, RED)], model.metadata.preprocess))
    (found,) = red.detections  # anchor 1 has objectness sigmoid(-8): below the score floor
    assert found.label == "scratch" and found.score > 0.98
    box = found.box
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx((0.25, 0.375, 0.75, 0.625))


def test_a_letterboxed_nchw_mask_head_gives_a_mask_of_the_image(tmp_path: Path) -> None:
    artifact = tmp_path / "mask"
    options = ImportOptions(
        task=Task.SEGMENTATION, classes=("scratch", "spot"), output="mask", logits=True, resize="letterbox"
    )
    import_onnx(mask_model(tmp_path / "mask.onnx"), artifact, options)
    model = load_model(artifact, "onnx", threads=1)
    frame = bgr_frame(128, 64, RED)
    frame[:, 96:] = (255, 0, 0)  # the right quarter is blue
    (seg,) = model.predict(preprocess_batch([frame], model.metadata.preprocess), [(128, 64)])
    assert seg.mask is not None and seg.mask.shape == (32, 64)  # the image's part of the 64x64 input
    assert set(np.unique(seg.mask[:, :40])) == {1} and set(np.unique(seg.mask[:, 56:])) == {2}
    labels = {d.label: d for d in seg.detections}
    assert set(labels) == {"scratch", "spot"}
    assert labels["scratch"].box.y_min == pytest.approx(0.0) and labels["scratch"].box.y_max == pytest.approx(
        1.0
    )
