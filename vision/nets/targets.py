"""Labels -> training targets for each network (NumPy only, used inside the tf.data pipeline)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vision.samples import BoxLabel

# TTFNet's elliptical Gaussians: sigma = alpha * box side / 6 gives long, thin defects long, thin targets.
_GAUSSIAN_ALPHA = 0.54
_MIN_SIGMA_CELLS = 0.6


def detection_targets(
    boxes: Sequence[BoxLabel], classes: Sequence[str], grid_width: int, grid_height: int
) -> np.ndarray:
    """``(grid_h, grid_w, K + 5)``: K centre heat-maps (1.0 at each box centre cell, a Gaussian around it),
    the centre's offset in its cell (x, y), the box size (w, h, fractions of the image), and a centre flag
    that tells the loss where offset and size are defined."""
    k = len(classes)
    target = np.zeros((grid_height, grid_width, k + 5), dtype=np.float32)
    ys = np.arange(grid_height, dtype=np.float32)[:, None]
    xs = np.arange(grid_width, dtype=np.float32)[None, :]
    for box in boxes:
        if box.label not in classes:
            continue
        class_id = classes.index(box.label)
        cx = (box.x_min + box.x_max) / 2 * grid_width
        cy = (box.y_min + box.y_max) / 2 * grid_height
        col = min(int(cx), grid_width - 1)
        row = min(int(cy), grid_height - 1)
        sigma_x = max(_GAUSSIAN_ALPHA * (box.x_max - box.x_min) * grid_width / 6, _MIN_SIGMA_CELLS)
        sigma_y = max(_GAUSSIAN_ALPHA * (box.y_max - box.y_min) * grid_height / 6, _MIN_SIGMA_CELLS)
        gaussian = np.exp(
            -((xs - col) ** 2) / (2 * sigma_x**2) - ((ys - row) ** 2) / (2 * sigma_y**2)
        ).astype(np.float32)
        np.maximum(target[..., class_id], gaussian, out=target[..., class_id])
        target[row, col, class_id] = 1.0
        target[row, col, k : k + 2] = (cx - col, cy - row)
        target[row, col, k + 2 : k + 4] = (box.x_max - box.x_min, box.y_max - box.y_min)
        target[row, col, k + 4] = 1.0
    return target


def class_index(label: str, classes: Sequence[str]) -> int:
    """Index of an image-level label; a label outside the class list is a data error worth a clear message."""
    try:
        return list(classes).index(label)
    except ValueError:
        raise ValueError(f"label {label!r} is not one of the model's classes {list(classes)}") from None
