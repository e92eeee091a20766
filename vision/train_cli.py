"""`lineguard train` and `lineguard export`.

TensorFlow is imported inside the commands, never at module import, so `lineguard --help` stays fast and
processes that only serve ONNX never load it.
"""

from __future__ import annotations

import logging
import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from schemas.errors import ConfigurationError
from schemas.vocabulary import ModelTaskName, Task
from vision.datasets import load_dataset
from vision.samples import LabeledDataset
from vision.train_defaults import choose_recipe, choose_schedule, sample_shapes

logger = logging.getLogger(__name__)

SYNTHETIC_PREFIX = "synthetic"
DEFAULT_SYNTHETIC_COUNT = 2000


class AnomalyMethod(StrEnum):
    simulated = "simulated"
    autoencoder = "autoencoder"


class DetectorHead(StrEnum):
    centernet = "centernet"
    fcos = "fcos"


class DataFormat(StrEnum):
    folder = "folder"
    voc = "voc"
    coco = "coco"
    masks = "masks"
    goodonly = "goodonly"


def parse_size(text: str) -> tuple[int, int]:
    """``"160"`` -> (160, 160); ``"200x160"`` -> (200, 160) as (width, height)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 16:
        raise ConfigurationError(f"size {text!r} must be N or WxH with sides of at least 16 pixels")
    return parts[0], parts[1]


def parse_synthetic(data: str) -> int | None:
    """``synthetic`` / ``synthetic:N`` -> N frames; anything else (a path) -> None."""
    if data != SYNTHETIC_PREFIX and not data.startswith(f"{SYNTHETIC_PREFIX}:"):
        return None
    _, _, count = data.partition(":")
    if not count:
        return DEFAULT_SYNTHETIC_COUNT
    if not count.isdigit() or int(count) < 1:
        raise ConfigurationError(f"--data {data!r}: expected synthetic:N with N a positive number of frames")
    return int(count)


def load_training_data(
    data: str,
    task: Task,
    fmt: DataFormat | None,
    seed: int,
    synthetic_size: tuple[int, int],
    channels: int,
    defect_rate: float,
) -> LabeledDataset:
    """The dataset that ``--data`` names: generated frames or a dataset folder in a known format."""
    count = parse_synthetic(data)
    if count is not None:
        from vision.synthetic import synthetic_dataset

        width, height = synthetic_size
        return synthetic_dataset(
            count, task, width=width, height=height, channels=channels, seed=seed, defect_rate=defect_rate
        )

    return load_dataset(Path(data), task, fmt.value if fmt else None)


def train_command(
    task: Annotated[ModelTaskName, typer.Option(help="classify, detect, segment or anomaly")],
    data: Annotated[str, typer.Option(help="dataset folder/file, or synthetic[:N] for generated frames")],
    out: Annotated[Path, typer.Option(help="artifact directory to write (model.keras, model.json, ...)")],
    fmt: Annotated[
        DataFormat | None, typer.Option("--format", help="dataset layout; guessed if left out")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="maximum epochs (early stopping may end sooner); default 20, 100 to segment real images",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="default 32, 8 to segment real images")
    ] = None,
    input_size: Annotated[
        str | None,
        typer.Option(
            help="model input, N or WxH (multiples of 16; 32 for the fcos head); default: from the data "
            "(median image size, longest side at most 640 for detect/segment, 320 for anomaly; 160 to "
            "classify)"
        ),
    ] = None,
    crop: Annotated[
        str | None,
        typer.Option(
            help="train on random crops N or WxH of the input (small defects at full detail for the cost "
            "of a crop); the model still serves the whole --input-size; default: 320 px crops for "
            "detect/segment inputs larger than that, when the input size is chosen from the data"
        ),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(min=1, max=3, help="3 (colour) or 1 (grey); default: 1 when the images are grey"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seeds the split, augmentation, weights and synthetic data")] = 0,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 2e-3,
    patience: Annotated[
        int | None,
        typer.Option(
            min=1, help="early stopping: epochs without improvement; default 5, 20 to segment real images"
        ),
    ] = None,
    validation_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.15,
    augment: Annotated[bool, typer.Option("--augment/--no-augment")] = True,
    width: Annotated[float, typer.Option(min=0.25, max=4.0, help="channel-width multiplier")] = 1.0,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            help="training budget in minutes: the learning-rate schedule ends with it, and no epoch "
            "starts that would overrun it; default none, 25 to segment real images"
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="model name (default lineguard-<task>)")] = None,
    version: Annotated[str | None, typer.Option(help="model version (default: creation time)")] = None,
    synthetic_size: Annotated[
        str | None, typer.Option(help="generated frame size WxH (default: 5:4 frames at the input height)")
    ] = None,
    defect_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="synthetic: share of defective frames")
    ] = 0.5,
    onnx: Annotated[
        bool, typer.Option("--onnx/--no-onnx", help="also export model.onnx (parity-checked)")
    ] = True,
    keep_checkpoints: Annotated[bool, typer.Option(help="keep <out>/.checkpoints after training")] = False,
    anomaly_method: Annotated[
        AnomalyMethod,
        typer.Option(help="anomaly: simulated (good images + painted-in defects) or autoencoder"),
    ] = AnomalyMethod.simulated,
    false_reject_budget: Annotated[
        float,
        typer.Option(min=0.0, max=0.5, help="anomaly: share of good images the good-only threshold rejects"),
    ] = 0.01,
    detector_head: Annotated[
        DetectorHead | None,
        typer.Option(
            help="detect: fcos (strides 8/16/32, input multiple of 32; the default) or centernet (stride 4)"
        ),
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option(
            "--ema",
            min=0.0,
            max=0.999,
            help="momentum of the weights' moving average that is validated and served (0: off; "
            "default: 0.99 for detect, off for the other tasks)",
        ),
    ] = None,
    mosaic: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="detect: share of examples built as a 4-image mosaic (0: off)"),
    ] = None,
    copy_paste: Annotated[
        int | None,
        typer.Option(min=0, help="detect: instances of other images pasted per example (0: off)"),
    ] = None,
    balance: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="detect: class-balanced sampling, 0 (as the data is) to 1 (classes alike)"
        ),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="artifact to start from (layers with the same name and shape), e.g. an anomaly model"
        ),
    ] = None,
) -> None:
    """Train a model from scratch and write a versioned artifact."""
    model_task = Task(task)
    if channels == 2:
        raise ConfigurationError("--channels must be 1 or 3")
    given = {
        "input_size": parse_size(input_size) if input_size else None,
        "crop": parse_size(crop) if crop else None,
        "channels": channels,
        "detector_head": detector_head.value if detector_head else None,
    }
    if parse_synthetic(data) is not None:
        # Generated frames take their size from the input, so the input cannot come from them.
        recipe = choose_recipe(model_task, [], **given)  # type: ignore[arg-type]
        shapes: list[tuple[int, ...]] = []
        frame_h = recipe.input_size[1]
        frame_size = parse_size(synthetic_size) if synthetic_size else (frame_h * 5 // 4, frame_h)
        dataset = load_training_data(data, model_task, fmt, seed, frame_size, recipe.channels, defect_rate)
    else:
        dataset = load_dataset(Path(data), model_task, fmt.value if fmt else None)
        shapes = sample_shapes(dataset)
        recipe = choose_recipe(model_task, shapes, **given)  # type: ignore[arg-type]
    schedule = choose_schedule(
        model_task, shapes, epochs=epochs, batch_size=batch_size, patience=patience, max_minutes=max_minutes
    )
    epochs, batch_size, patience = schedule.epochs, schedule.batch_size, schedule.patience
    max_minutes = schedule.max_minutes
    head = DetectorHead(recipe.detector_head)
    input_width, input_height = recipe.input_size
    if model_task is not Task.CLASSIFICATION and (input_width % 16 or input_height % 16):
        raise ConfigurationError(f"--input-size for {model_task.value} must be a multiple of 16")
    if model_task is Task.DETECTION and head is DetectorHead.fcos and (input_width % 32 or input_height % 32):
        raise ConfigurationError("--input-size for --detector-head fcos must be a multiple of 32")
    crop_size = recipe.crop
    if crop_size is not None:
        _check_crop(crop_size, (input_width, input_height), model_task, head)
    budget = f", within {max_minutes:g} min" if max_minutes else ""
    plan = f"up to {epochs} epochs{budget} (stop after {patience} without improvement)"
    typer.echo(f"recipe: {'; '.join([*recipe.notes, plan, *schedule.notes])}")

    from vision.training import TrainConfig, train_model

    config = TrainConfig(
        task=model_task,
        input_width=input_width,
        input_height=input_height,
        channels=recipe.channels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        validation_fraction=validation_fraction,
        patience=patience,
        augment=augment,
        width=width,
        max_minutes=max_minutes,
        name=name,
        version=version,
        keep_checkpoints=keep_checkpoints,
        anomaly_method=anomaly_method.value,
        false_reject_budget=false_reject_budget,
        init_from=str(init_from) if init_from else None,
        detector_head=head.value,
        crop=crop_size,
        ema=ema,
        mosaic=mosaic,
        copy_paste=copy_paste,
        balance=balance,
        command=shlex.join(["lineguard", *sys.argv[1:]]),
    )
    result = train_model(dataset, config, out)
    typer.echo(
        f"wrote {result.artifact} ({model_task.value} {result.metadata.version}) in {result.duration_s:.0f} s"
    )
    for key, value in result.metadata.metrics.items():
        if isinstance(value, float):
            typer.echo(f"  {key}: {value:.4f}")
    if onnx:
        _export_after_training(result.artifact)


def _check_crop(crop: tuple[int, int], input_size: tuple[int, int], task: Task, head: DetectorHead) -> None:
    if task is Task.CLASSIFICATION:
        raise ConfigurationError(
            "--crop is for detect, segment and anomaly: a classifier sees the whole frame"
        )
    if crop[0] > input_size[0] or crop[1] > input_size[1]:
        raise ConfigurationError(
            f"--crop {crop[0]}x{crop[1]} is larger than --input-size {input_size[0]}x{input_size[1]}"
        )
    multiple = 32 if head is DetectorHead.fcos and task is Task.DETECTION else 16
    if crop[0] % multiple or crop[1] % multiple:
        raise ConfigurationError(f"--crop for {task.value} must be a multiple of {multiple}")


def _export_after_training(model: Path) -> None:
    """A finished training is never lost to its export: on any export failure the Keras artifact stays
    (servable with the Keras backend), one line says what failed, and the command still succeeds."""
    try:
        _export(model)
    except Exception as exc:  # the trained model is the result; ONNX is an extra
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        typer.echo(
            f"warning: ONNX export failed, kept the Keras model (serve it with the Keras backend; "
            f"retry with `lineguard export {model}`): {first_line}"
        )


def export_command(
    model: Annotated[Path, typer.Argument(help="artifact directory (with model.keras)")],
    opset: Annotated[int, typer.Option(min=9)] = 17,
    tolerance: Annotated[float, typer.Option(help="largest allowed |onnx - keras| (raw outputs)")] = 5e-3,
) -> None:
    """Export an artifact's Keras model to ONNX and check that both give the same outputs."""
    _export(model, opset, tolerance)


def _export(model: Path, opset: int = 17, tolerance: float = 5e-3) -> None:
    from vision.export import export_onnx

    report = export_onnx(model, opset=opset, tolerance=tolerance)
    typer.echo(
        f"wrote {report.onnx_path} ({report.size_bytes / 1e6:.2f} MB, opset {report.opset}); "
        f"max |onnx - keras| = {report.max_abs_diff:.3g} over {report.parity_images} images"
    )
