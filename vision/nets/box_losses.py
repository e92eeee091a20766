"""Box-regression losses that suit elongated defects: GIoU (Rezatofighi et al. 2019) and CIoU (Zheng et al.
2020).

Why not L1 on sizes: a 2-px error costs the same on a 4-px pit and on a 400-px scratch, and an L1 on the
width and height of a long thin box says nothing about how much of it overlaps. IoU-based losses are
scale-invariant; GIoU still has a gradient when boxes do not overlap (the enclosing box term), and CIoU adds
the centre distance and an aspect-ratio term, which matters for 1:20 scratches.

Boxes are ``(..., 4)`` as ``x_min, y_min, x_max, y_max`` in any common unit. Keras ops, so the same code
runs on NumPy arrays (tests) and inside the training graph.
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

EPSILON = 1e-7


def _parts(pred: Any, true: Any) -> tuple[Any, Any, Any, Any, Any]:
    """IoU, union, the enclosing box's width and height, and the intersection."""
    px1, py1, px2, py2 = (pred[..., i] for i in range(4))
    tx1, ty1, tx2, ty2 = (true[..., i] for i in range(4))
    pred_area = ops.maximum(px2 - px1, 0.0) * ops.maximum(py2 - py1, 0.0)
    true_area = ops.maximum(tx2 - tx1, 0.0) * ops.maximum(ty2 - ty1, 0.0)
    inter_w = ops.maximum(ops.minimum(px2, tx2) - ops.maximum(px1, tx1), 0.0)
    inter_h = ops.maximum(ops.minimum(py2, ty2) - ops.maximum(py1, ty1), 0.0)
    inter = inter_w * inter_h
    union = pred_area + true_area - inter
    iou = inter / (union + EPSILON)
    enclose_w = ops.maximum(px2, tx2) - ops.minimum(px1, tx1)
    enclose_h = ops.maximum(py2, ty2) - ops.minimum(py1, ty1)
    return iou, union, enclose_w, enclose_h, inter


def iou(pred: Any, true: Any) -> Any:
    """Intersection over union, per box pair (broadcast over leading axes)."""
    return _parts(pred, true)[0]


def giou_loss(pred: Any, true: Any) -> Any:
    """``1 - GIoU`` per box pair, in [0, 2]: ``GIoU = IoU - (enclosing area - union) / enclosing area``."""
    value, union, enclose_w, enclose_h, _ = _parts(pred, true)
    enclose = enclose_w * enclose_h
    return 1.0 - (value - (enclose - union) / (enclose + EPSILON))


def ciou_loss(pred: Any, true: Any) -> Any:
    """``1 - IoU + rho^2 / c^2 + alpha * v`` per box pair: ``rho`` the distance between centres, ``c`` the
    enclosing box's diagonal, ``v`` the squared difference of the boxes' ``atan(w / h)`` (scaled by
    ``4 / pi^2``) and ``alpha = v / (1 - IoU + v)``, held constant (no gradient through it), as in the
    paper."""
    value, _, enclose_w, enclose_h, _ = _parts(pred, true)
    pcx = (pred[..., 0] + pred[..., 2]) / 2
    pcy = (pred[..., 1] + pred[..., 3]) / 2
    tcx = (true[..., 0] + true[..., 2]) / 2
    tcy = (true[..., 1] + true[..., 3]) / 2
    rho2 = ops.square(pcx - tcx) + ops.square(pcy - tcy)
    c2 = ops.square(enclose_w) + ops.square(enclose_h) + EPSILON
    pw = ops.maximum(pred[..., 2] - pred[..., 0], EPSILON)
    ph = ops.maximum(pred[..., 3] - pred[..., 1], EPSILON)
    tw = ops.maximum(true[..., 2] - true[..., 0], EPSILON)
    th = ops.maximum(true[..., 3] - true[..., 1], EPSILON)
    v = (4.0 / math.pi**2) * ops.square(ops.arctan(tw / th) - ops.arctan(pw / ph))
    alpha = ops.stop_gradient(v / (1.0 - value + v + EPSILON))
    return 1.0 - value + rho2 / c2 + alpha * v
