"""The evaluation report: ``metrics.json``, PNG plots drawn with OpenCV, and ``report.md`` linking them.

No plotting library: a confusion matrix and a few line charts are simple enough to draw directly, and it keeps
the dependency list short. Charts plot values in [0, 1] on both axes (precision, recall, rates).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.artifact import ModelMetadata
from vision.evaluation import Evaluation
from vision.report_examples import write_examples

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (200, 200, 200)
# Distinguishable BGR colours for up to ten series (Tableau 10), then they repeat.
PALETTE = [
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
]  # fmt: skip
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart."""

    name: str
    x: np.ndarray
    y: np.ndarray


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.45, colour=BLACK) -> None:
    cv2.putText(image, text, origin, FONT, scale, colour, 1, cv2.LINE_AA)


def draw_line_chart(
    title: str, x_label: str, y_label: str, series: Sequence[Series], diagonal: bool = False, size: int = 560
) -> np.ndarray:
    """A square chart of [0, 1] x [0, 1] with a grid, axis labels, one polyline per series and a legend
    below the plot (inside it, the legend would hide the curves' top-right corner)."""
    legend_rows = (len(series) + 1) // 2
    image = np.full((size + 18 * legend_rows + 6, size, 3), 255, dtype=np.uint8)
    left, top, right, bottom = 60, 40, size - 20, size - 60
    width, height = right - left, bottom - top

    def to_pixel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + np.clip(x, 0, 1) * width
        py = bottom - np.clip(y, 0, 1) * height
        return np.stack([px, py], axis=1).round().astype(np.int32)

    for tick in np.linspace(0, 1, 6):
        x = round(float(left + tick * width))
        y = round(float(bottom - tick * height))
        cv2.line(image, (x, top), (x, bottom), GREY, 1)
        cv2.line(image, (left, y), (right, y), GREY, 1)
        _text(image, f"{tick:.1f}", (x - 10, bottom + 18), 0.4)
        _text(image, f"{tick:.1f}", (left - 32, y + 4), 0.4)
    cv2.rectangle(image, (left, top), (right, bottom), BLACK, 1)
    if diagonal:
        cv2.line(image, (left, bottom), (right, top), (160, 160, 160), 1, cv2.LINE_AA)
    _text(image, title, (left, 25), 0.55)
    _text(image, x_label, (left + width // 2 - 30, size - 22))
    # OpenCV cannot draw rotated text: the y label goes above the axis.
    _text(image, y_label, (5, top - 5), 0.4)

    for i, line in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        points = to_pixel(np.asarray(line.x, dtype=np.float64), np.asarray(line.y, dtype=np.float64))
        if len(points) == 1:
            cv2.circle(image, tuple(int(v) for v in points[0]), 3, colour, -1, cv2.LINE_AA)
        elif len(points) > 1:
            cv2.polylines(image, [points.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        legend_x = left + (i % 2) * (width // 2)
        legend_y = size + 8 + 18 * (i // 2)
        cv2.line(image, (legend_x, legend_y - 4), (legend_x + 20, legend_y - 4), colour, 2)
        _text(image, line.name[:30], (legend_x + 25, legend_y), 0.42)
    return image


def draw_bar_chart(title: str, groups: dict[str, dict[str, float]], width: int = 560) -> np.ndarray:
    """Horizontal bars in [0, 1]: one row per class, one bar per measure (e.g. IoU and Dice), with values."""
    measures = sorted({name for values in groups.values() for name in values})
    row = 16 * len(measures) + 14
    left, top = 110, 50
    height = top + row * len(groups) + 30
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    span = width - left - 70
    _text(image, title, (10, 25), 0.55)
    for i, name in enumerate(measures):
        colour = PALETTE[i % len(PALETTE)]
        cv2.rectangle(image, (width - 150 + 75 * i, 34), (width - 138 + 75 * i, 44), colour, -1)
        _text(image, name, (width - 134 + 75 * i, 44), 0.4)
    for r, (label, values) in enumerate(groups.items()):
        y = top + r * row
        _text(image, label[:14], (5, y + row // 2 + 4), 0.42)
        for i, name in enumerate(measures):
            value = float(np.clip(values.get(name, 0.0), 0.0, 1.0))
            y0 = y + 4 + 16 * i
            cv2.rectangle(
                image, (left, y0), (left + round(value * span), y0 + 12), PALETTE[i % len(PALETTE)], -1
            )
            _text(image, f"{value:.3f}", (left + round(value * span) + 4, y0 + 11), 0.38)
    cv2.line(image, (left, top - 4), (left, height - 24), BLACK, 1)
    return image


def draw_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], cell: int = 56) -> np.ndarray:
    """Rows are true classes, columns predicted; each cell is shaded by its share of the row (recall) and
    shows the count."""
    n = len(classes)
    margin_left, margin_top = 120, 110
    size_x, size_y = margin_left + n * cell + 20, margin_top + n * cell + 40
    image = np.full((size_y, size_x, 3), 255, dtype=np.uint8)
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64), where=totals > 0)
    for row in range(n):
        for col in range(n):
            x0, y0 = margin_left + col * cell, margin_top + row * cell
            shade = int(255 - 200 * shares[row, col])
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (255, shade, shade), -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), GREY, 1)
            text = str(int(matrix[row, col]))
            colour = WHITE if shares[row, col] > 0.6 else BLACK
            _text(image, text, (x0 + cell // 2 - 5 * len(text), y0 + cell // 2 + 5), 0.45, colour)
    for i, name in enumerate(classes):
        _text(image, name[:14], (5, margin_top + i * cell + cell // 2 + 5), 0.42)
        # Column names go diagonally-stacked above their column to fit long names.
        _text(image, name[:10], (margin_left + i * cell + 2, margin_top - 10 - 14 * (i % 3)), 0.4)
    _text(image, "true (rows) vs predicted (columns)", (5, 22), 0.5)
    return image


def _write_png(path: Path, image: np.ndarray) -> Path:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path


def _markdown(
    metadata: ModelMetadata, metrics: dict[str, Any], figures: list[Path], examples: Sequence[str] = ()
) -> str:
    data = metrics.get("data", {})
    lines = [
        f"# Evaluation of {metadata.name} {metadata.version} ({metadata.task.value})",
        "",
        f"Data: {data.get('description', '?')}, {data.get('samples', '?')} images.",
        "",
        f"Trained on: {metadata.training.dataset if metadata.training else 'unknown'}.",
        "",
    ]
    headline: dict[str, float] = {
        key: metrics[key]
        for key in ("accuracy", "macro_f1", "map50", "map50_95", "mean_iou", "mean_dice", "defect_iou")
        if key in metrics
    }
    defect = metrics.get("defect_vs_good", {})
    if "auroc" in defect:
        headline["defect_auroc"] = defect["auroc"]
        headline["max_f1_threshold"] = defect["max_f1_threshold"]["threshold"]
        capped = defect["false_reject_threshold"]
        headline[f"threshold_at_false_reject_{capped['target_false_reject_rate']:g}"] = capped["threshold"]
        headline[f"recall_at_false_reject_{capped['target_false_reject_rate']:g}"] = capped["recall"]
    if headline:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4f} |" for key, value in headline.items()]
        lines.append("")
    per_class = metrics.get("per_class", {})
    if per_class:
        columns = sorted({key for row in per_class.values() for key in row})
        lines += ["| class | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, row in per_class.items():
            cells = [
                f"{row[c]:.4f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![{figure.stem}]({figure.name})" for figure in figures]
    lines += ["", *examples, "All figures: `metrics.json`.", ""]
    return "\n".join(lines)


def write_report(
    out_dir: Path, metadata: ModelMetadata, evaluation: Evaluation, examples: int = 0
) -> list[Path]:
    """Write ``metrics.json``, the plots that apply to the task, up to ``examples`` pictures of the worst
    failures (:mod:`vision.report_examples`) and ``report.md``; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    if evaluation.confusion is not None:
        image = draw_confusion_matrix(evaluation.confusion, evaluation.classes)
        figures.append(_write_png(out_dir / "confusion_matrix.png", image))
    if evaluation.pr_curves:
        series = [
            Series(
                f"{name} AP {evaluation.metrics['per_class'][name]['ap50']:.2f}",
                curve.recall,
                curve.precision,
            )
            for name, curve in evaluation.pr_curves.items()
        ]
        chart = draw_line_chart("Precision-recall at IoU 0.5", "recall", "precision", series)
        figures.append(_write_png(out_dir / "pr_curves.png", chart))
    per_class = evaluation.metrics.get("per_class", {})
    if per_class and all("iou" in values for values in per_class.values()):
        groups = {name: {"IoU": v["iou"], "Dice": v["dice"]} for name, v in per_class.items()}
        figures.append(
            _write_png(out_dir / "segmentation.png", draw_bar_chart("Per-class IoU and Dice", groups))
        )
    if evaluation.roc is not None:
        auc = evaluation.metrics["defect_vs_good"]["auroc"]
        roc = Series(
            f"AUROC {auc:.3f}", evaluation.roc.false_positive_rate, evaluation.roc.true_positive_rate
        )
        chart = draw_line_chart(
            "Defect vs good ROC", "false positive rate", "true positive rate", [roc], True
        )
        figures.append(_write_png(out_dir / "roc.png", chart))
    pictures: list[Path] = []
    section: list[str] = []
    if examples > 0 and evaluation.samples:
        pictures, section = write_examples(
            out_dir, metadata, evaluation.samples, evaluation.predictions, examples
        )
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(evaluation.metrics, indent=2) + "\n", encoding="utf-8")
    report_path = out_dir / "report.md"
    report_path.write_text(_markdown(metadata, evaluation.metrics, figures, section), encoding="utf-8")
    return [metrics_path, *figures, *pictures, report_path]
