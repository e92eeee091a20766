"""``lineguard models import``: the command line of :mod:`vision.model_import` (registered on ``models``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise ConfigurationError(f"--input-size {text!r}: use WIDTHxHEIGHT, e.g. 640x640")
    return int(width), int(height)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in allowed:
        raise ConfigurationError(f"{name} {value!r}: choose one of {', '.join(allowed)}")
    return lowered


def models_import(
    file: Annotated[Path, typer.Argument(help="ONNX model file trained elsewhere")],
    task: Annotated[str, typer.Option("--task", help="classify, detect or segment")],
    classes: Annotated[str, typer.Option("--classes", help="class names in output order, comma-separated")],
    output: Annotated[
        str,
        typer.Option("--output", help="softmax, logits, sigmoid (classify); yolo, centernet (detect); mask"),
    ],
    out: Annotated[Path, typer.Option("--out", help="artifact directory to write (must not exist)")],
    layout: Annotated[str, typer.Option("--layout", help="nchw or nhwc")] = "nchw",
    color: Annotated[str, typer.Option("--color", help="rgb or bgr (1-channel models: grey)")] = "rgb",
    normalize: Annotated[
        str, typer.Option("--normalize", help="0-1, -1-1, imagenet, none, or scale=S,mean=a:b:c,std=a:b:c")
    ] = "0-1",
    resize: Annotated[str, typer.Option("--resize", help="stretch or letterbox")] = "stretch",
    logits: Annotated[
        bool, typer.Option("--logits", help="yolo/centernet/mask scores are logits (sigmoid/softmax added)")
    ] = False,
    box_units: Annotated[
        str, typer.Option("--box-units", help="yolo boxes in input 'pixels' or 'normalized' fractions")
    ] = "pixels",
    input_size: Annotated[
        str | None, typer.Option("--input-size", help="WxH, for models with a dynamic input size")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="model name (default: file name)")] = None,
    version: Annotated[str | None, typer.Option("--version", help="default: the import time")] = None,
    min_score: Annotated[
        float, typer.Option("--min-score", min=0.0, max=1.0, help="detection score floor")
    ] = 0.25,
    nms_iou: Annotated[float, typer.Option("--nms-iou", min=0.0, max=1.0, help="NMS overlap limit")] = 0.45,
    sample: Annotated[
        list[Path] | None, typer.Option("--sample", help="image file(s) for the check (default: synthetic)")
    ] = None,
    publish: Annotated[bool, typer.Option("--publish", help="publish the artifact to --registry")] = False,
    registry: Annotated[
        str | None, typer.Option("--registry", help="registry directory or mongodb:// URI (with --publish)")
    ] = None,
) -> None:
    """Turn an ONNX model trained elsewhere into a checked lineguard artifact (optionally publish it)."""
    from vision.model_import import ImportOptions, import_onnx

    task_name = _choice("--task", task, ("classify", "detect", "segment"))
    names = tuple(c.strip() for c in classes.split(",") if c.strip())
    if not names:
        raise ConfigurationError("--classes needs at least one class name")
    options = ImportOptions(
        task=Task(task_name),
        classes=names,
        output=_choice("--output", output, ("softmax", "logits", "sigmoid", "yolo", "centernet", "mask")),  # type: ignore[arg-type]
        layout=_choice("--layout", layout, ("nchw", "nhwc")),  # type: ignore[arg-type]
        color=_choice("--color", color, ("rgb", "bgr", "grey")),  # type: ignore[arg-type]
        normalize=normalize,
        resize=_choice("--resize", resize, ("stretch", "letterbox")),  # type: ignore[arg-type]
        logits=logits,
        box_units=_choice("--box-units", box_units, ("pixels", "normalized")),
        input_size=_size(input_size),
        name=name,
        version=version,
        min_score=min_score,
        nms_iou=nms_iou,
    )
    report = import_onnx(file, out, options, _read_samples(sample or []))
    meta = report.metadata
    typer.echo(
        f"imported {file.name} as {meta.name} {meta.version} ({meta.task.value}, {meta.preprocess.width}x"
        f"{meta.preprocess.height}, output {list(report.output_shape)}) into {out}; parity max |diff| "
        f"{report.max_abs_diff:.2g} over {report.parity_images} images"
    )
    if publish:
        from vision.registry import open_registry

        store = open_registry(registry)
        published = store.publish(out)
        typer.echo(f"published {published.name} {published.version} to {store.location}")


def _read_samples(paths: list[Path]) -> list[np.ndarray]:
    import cv2

    images: list[np.ndarray] = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ConfigurationError(f"--sample {path}: not a readable image")
        images.append(image)
    return images
