"""Wrap an ONNX graph trained elsewhere so it meets lineguard's model contract, inside the graph.

lineguard's backends feed one float32 NHWC tensor (already resized, colour-ordered and normalized by
:func:`vision.preprocess.preprocess_batch`) and decode one output in the layouts of :mod:`vision.outputs`.
Rather than teach every backend every foreign convention, the import adds a few nodes around the foreign
graph, so the artifact's ``model.onnx`` speaks lineguard's contract and any ONNX Runtime (CPU, CUDA,
TensorRT) serves it unchanged:

- input: ``image`` NHWC; a ``Transpose`` feeds NCHW models.
- classify: ``softmax`` as is; ``logits`` -> ``Softmax``; ``sigmoid`` (multi-label logits) -> ``Sigmoid``.
- yolo: YOLOv8-style ``[N, 4+K, A]`` (or ``[N, A, 4+K]``), YOLOv5-style ``[N, A, 5+K]`` (objectness times
  class score); boxes ``cx, cy, w, h`` in input pixels (or fractions) -> ``[N, A, K+4]`` = scores, then
  ``x_min, y_min, x_max, y_max`` fractions: the ``points`` head, whose NMS runs in ``vision.outputs``.
- centernet: ``[N, K+4, Gh, Gw]`` (NCHW) -> ``[N, Gh, Gw, K+4]``.
- mask: ``[N, K+1, H, W]`` (NCHW) -> ``[N, H, W, K+1]``, ``Softmax`` over classes for logits.

:func:`reference_outputs` does the same in NumPy: the import compares both on sample images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # onnx loads when a model is imported, not with the package
    from onnx import ModelProto, NodeProto, TensorProto

Layout = Literal["nchw", "nhwc"]
OutputKind = Literal["softmax", "logits", "sigmoid", "yolo", "centernet", "mask"]
YoloStyle = Literal["v8", "v8-rows", "v5"]

INPUT_NAME = "image"
OUTPUT_NAME = "output"


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How to turn the foreign output into lineguard's: decided once from its concrete shape."""

    kind: OutputKind
    classes: int
    logits: bool = False  # yolo / centernet / mask scores before their activation
    yolo_style: YoloStyle = "v8"
    box_scale: tuple[float, float] = (1.0, 1.0)  # divide cx, w by [0] and cy, h by [1] (input pixels -> 0-1)


def plan_output(
    kind: OutputKind,
    shape: tuple[int, ...],
    classes: int,
    layout: Layout,
    logits: bool,
    box_scale: tuple[float, float],
) -> OutputPlan:
    """Check the foreign output's shape against ``kind`` and ``classes`` (ValueError: what was expected)."""
    k = classes
    if kind in ("softmax", "logits", "sigmoid"):
        if len(shape) != 2 or shape[1] != k:
            raise ValueError(
                f"a classifier with {k} classes should output [N, {k}], the model gives {list(shape)}"
            )
        return OutputPlan(kind, k)
    if kind == "yolo":
        if len(shape) != 3:
            raise ValueError(f"a YOLO head outputs [N, 4+K, anchors] or [N, anchors, 5+K], got {list(shape)}")
        if shape[1] == 4 + k:
            style: YoloStyle = "v8"
        elif shape[2] == 4 + k:
            style = "v8-rows"
        elif shape[2] == 5 + k:
            style = "v5"
        else:
            raise ValueError(
                f"YOLO output {list(shape)} fits neither [N, {4 + k}, anchors] nor [N, anchors, {4 + k} or "
                f"{5 + k}] for {k} classes"
            )
        return OutputPlan(kind, k, logits, style, box_scale)
    expected = k + 4 if kind == "centernet" else k + 1
    channel_axis = 1 if layout == "nchw" else 3
    if len(shape) != 4 or shape[channel_axis] != expected:
        raise ValueError(
            f"a {kind} head with {k} classes should output {expected} channels on axis {channel_axis} of a "
            f"4-D array ({layout}), the model gives {list(shape)}"
        )
    return OutputPlan(kind, k, logits)


def wrap_model(model: ModelProto, layout: Layout, plan: OutputPlan) -> ModelProto:
    """A copy of ``model`` (an ``onnx.ModelProto``) with input ``image`` (NHWC) and output ``output``."""
    import onnx
    from onnx import TensorProto, helper

    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    graph = wrapped.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) < 1:
        raise ValueError(f"the model needs exactly one image input, it has {[i.name for i in inputs]}")
    original_in, original_out = inputs[0], graph.output[0].name
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in original_in.type.tensor_type.shape.dim]
    known: list[str | int] = ["N", *(dims[2:] + dims[1:2] if layout == "nchw" else dims[1:])]
    nhwc_dims: list[str | int | None] = [d if d != -1 else None for d in known]
    new_input = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, nhwc_dims)
    graph.input.remove(original_in)
    graph.input.insert(0, new_input)
    nodes: list[NodeProto] = []
    if layout == "nchw":
        nodes.append(helper.make_node("Transpose", [INPUT_NAME], [original_in.name], perm=[0, 3, 1, 2]))
    else:
        nodes.append(helper.make_node("Identity", [INPUT_NAME], [original_in.name]))
    for node in reversed(nodes):
        graph.node.insert(0, node)
    tail, extra_init = _output_nodes(original_out, layout, plan)
    graph.node.extend(tail)
    graph.initializer.extend(extra_init)
    del graph.output[:]
    rank = {"yolo": 3, "centernet": 4, "mask": 4}.get(plan.kind, 2)
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None] * rank))
    onnx.checker.check_model(wrapped)
    return wrapped


def _output_nodes(source: str, layout: Layout, plan: OutputPlan) -> tuple[list[NodeProto], list[TensorProto]]:
    from onnx import helper, numpy_helper

    def const(name: str, value: list[int] | list[float], dtype: type[np.generic] = np.int64) -> TensorProto:
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), f"lg_{name}")

    k = plan.classes
    if plan.kind == "softmax":
        return [helper.make_node("Identity", [source], [OUTPUT_NAME])], []
    if plan.kind == "logits":
        return [helper.make_node("Softmax", [source], [OUTPUT_NAME], axis=-1)], []
    if plan.kind == "sigmoid":
        return [helper.make_node("Sigmoid", [source], [OUTPUT_NAME])], []
    if plan.kind in ("centernet", "mask"):
        nodes = []
        current = source
        if layout == "nchw":
            nodes.append(helper.make_node("Transpose", [current], ["lg_nhwc"], perm=[0, 2, 3, 1]))
            current = "lg_nhwc"
        if plan.logits:
            if plan.kind == "mask":
                nodes.append(helper.make_node("Softmax", [current], [OUTPUT_NAME], axis=-1))
            else:  # CenterNet: sigmoid on the K heat-maps only, offsets and sizes stay as they are
                inits = [const("k0", [0]), const("kk", [k]), const("kend", [k + 4]), const("axis", [3])]
                nodes += [
                    helper.make_node("Slice", [current, "lg_k0", "lg_kk", "lg_axis"], ["lg_heat_logits"]),
                    helper.make_node("Slice", [current, "lg_kk", "lg_kend", "lg_axis"], ["lg_geometry"]),
                    helper.make_node("Sigmoid", ["lg_heat_logits"], ["lg_heat"]),
                    helper.make_node("Concat", ["lg_heat", "lg_geometry"], [OUTPUT_NAME], axis=-1),
                ]
                return nodes, inits
        else:
            nodes.append(helper.make_node("Identity", [current], [OUTPUT_NAME]))
        return nodes, []
    # yolo -> rows [N, A, C]
    nodes = []
    rows = source
    if plan.yolo_style == "v8":
        nodes.append(helper.make_node("Transpose", [source], ["lg_rows"], perm=[0, 2, 1]))
        rows = "lg_rows"
    inits = [
        const("b0", [0]),
        const("b4", [4]),
        const("b5", [5]),
        const("end", [np.iinfo(np.int64).max]),
        const("axis", [2]),
        const("c01", [0]),
        const("c2", [2]),
        const("c24", [4]),
        const("half", [0.5], np.float32),
        const("scale", [plan.box_scale[0], plan.box_scale[1]], np.float32),
    ]
    nodes += [
        helper.make_node("Slice", [rows, "lg_b0", "lg_b4", "lg_axis"], ["lg_box"]),
        helper.make_node("Slice", ["lg_box", "lg_c01", "lg_c2", "lg_axis"], ["lg_centre"]),
        helper.make_node("Slice", ["lg_box", "lg_c2", "lg_c24", "lg_axis"], ["lg_size"]),
        helper.make_node("Div", ["lg_centre", "lg_scale"], ["lg_centre_n"]),
        helper.make_node("Div", ["lg_size", "lg_scale"], ["lg_size_n"]),
        helper.make_node("Mul", ["lg_size_n", "lg_half"], ["lg_half_size"]),
        helper.make_node("Sub", ["lg_centre_n", "lg_half_size"], ["lg_top_left"]),
        helper.make_node("Add", ["lg_centre_n", "lg_half_size"], ["lg_bottom_right"]),
    ]
    activation = "Sigmoid" if plan.logits else "Identity"
    if plan.yolo_style == "v5":
        nodes += [
            helper.make_node("Slice", [rows, "lg_b4", "lg_b5", "lg_axis"], ["lg_obj_raw"]),
            helper.make_node("Slice", [rows, "lg_b5", "lg_end", "lg_axis"], ["lg_cls_raw"]),
            helper.make_node(activation, ["lg_obj_raw"], ["lg_obj"]),
            helper.make_node(activation, ["lg_cls_raw"], ["lg_cls"]),
            helper.make_node("Mul", ["lg_obj", "lg_cls"], ["lg_scores"]),
        ]
    else:
        nodes += [
            helper.make_node("Slice", [rows, "lg_b4", "lg_end", "lg_axis"], ["lg_cls_raw"]),
            helper.make_node(activation, ["lg_cls_raw"], ["lg_scores"]),
        ]
    nodes.append(
        helper.make_node("Concat", ["lg_scores", "lg_top_left", "lg_bottom_right"], [OUTPUT_NAME], axis=-1)
    )
    return nodes, inits


def reference_outputs(raw: np.ndarray, layout: Layout, plan: OutputPlan) -> np.ndarray:
    """What the wrapped graph should output for the foreign graph's output ``raw``, in NumPy."""
    raw = np.asarray(raw, np.float64)
    if plan.kind == "softmax":
        return raw
    if plan.kind == "logits":
        return _softmax(raw)
    if plan.kind == "sigmoid":
        return _sigmoid(raw)
    if plan.kind in ("centernet", "mask"):
        out = raw.transpose(0, 2, 3, 1) if layout == "nchw" else raw
        if not plan.logits:
            return out
        if plan.kind == "mask":
            return _softmax(out)
        return np.concatenate([_sigmoid(out[..., : plan.classes]), out[..., plan.classes :]], axis=-1)
    rows = raw.transpose(0, 2, 1) if plan.yolo_style == "v8" else raw
    act = _sigmoid if plan.logits else (lambda x: x)
    scale = np.array(plan.box_scale)
    centre, size = rows[..., 0:2] / scale, rows[..., 2:4] / scale
    scores = act(rows[..., 4:5]) * act(rows[..., 5:]) if plan.yolo_style == "v5" else act(rows[..., 4:])
    return np.concatenate([scores, centre - size / 2, centre + size / 2], axis=-1)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))
