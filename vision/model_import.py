"""``lineguard models import``: an ONNX model trained elsewhere -> a lineguard artifact, checked.

The user says what the model expects and what it outputs (task, classes, layout, colour order,
normalization, resize mode, output format); the import then

1. wraps the graph (:mod:`vision.onnx_adapter`) so its input is lineguard's preprocessed NHWC tensor and its
   output is in :mod:`vision.outputs`' layout (a YOLO head becomes the ``points`` head, NMS outside the
   graph);
2. runs the foreign graph on sample images (synthetic frames, or ``--sample`` files) preprocessed by
   :func:`vision.preprocess.preprocess_batch`, post-processes its output in NumPy, and checks that the
   wrapped graph gives the same numbers (``max_abs_diff <= tolerance``) and the same decoded predictions;
3. writes ``model.onnx``, ``model.json`` (provenance and the parity figure in ``metrics["import"]``) and
   ``parity.npz`` (the sample inputs and expected outputs: any later copy can be re-checked against it).

The artifact is then published to the registry like any other version (``lineguard models publish``).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.artifact import ONNX_FILE, ArtifactFiles, ModelMetadata, code_version, new_version, write_metadata
from vision.onnx_adapter import INPUT_NAME, OUTPUT_NAME, Layout, OutputKind, plan_output, reference_outputs
from vision.onnx_adapter import wrap_model as wrap_onnx
from vision.outputs import POINTS_HEAD, decode_outputs
from vision.preprocess import ColorOrder, PreprocessSpec, ResizeMode, preprocess_batch
from vision.synthetic import SyntheticDefectGenerator

if TYPE_CHECKING:  # onnxruntime loads when a model is imported
    from onnxruntime import InferenceSession

PARITY_FILE = "parity.npz"
DEFAULT_TOLERANCE = 1e-4  # the same graph in the same runtime: differences are float32 reorderings only

_TASK_OUTPUTS: dict[Task, tuple[str, ...]] = {
    Task.CLASSIFICATION: ("softmax", "logits", "sigmoid"),
    Task.DETECTION: ("yolo", "centernet"),
    Task.SEGMENTATION: ("mask",),
}

# ``--normalize``: name -> (scale, mean, std) for 3 channels; grey models take the first value of each.
NORMALIZATIONS: dict[str, tuple[float, tuple[float, ...], tuple[float, ...]]] = {
    "0-1": (1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "none": (1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "-1-1": (1 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
    "imagenet": (1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    task: Task
    classes: tuple[str, ...]
    output: OutputKind
    layout: Layout = "nchw"
    color: ColorOrder = "rgb"
    normalize: str = "0-1"
    resize: ResizeMode = "stretch"
    logits: bool = False  # yolo / centernet / mask scores come before their activation
    box_units: str = "pixels"  # yolo boxes in input pixels or fractions ("normalized")
    input_size: tuple[int, int] | None = None  # (width, height) for models with dynamic spatial dims
    name: str | None = None
    version: str | None = None
    min_score: float = 0.25
    nms_iou: float = 0.45
    defect_threshold: float = 0.5


@dataclass(frozen=True, slots=True)
class ImportReport:
    artifact: Path
    metadata: ModelMetadata
    max_abs_diff: float
    parity_images: int
    output_shape: tuple[int, ...]


def parse_normalization(text: str, channels: int) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """A ``--normalize`` value: a name of :data:`NORMALIZATIONS`, or ``scale=S,mean=a:b:c,std=a:b:c``."""
    key = text.strip().lower()
    if key in NORMALIZATIONS:
        scale, mean, std = NORMALIZATIONS[key]
        return scale, mean[:channels], std[:channels]
    fields: dict[str, str] = {}
    for part in key.split(","):
        name, sep, value = part.partition("=")
        if not sep or name not in ("scale", "mean", "std"):
            raise ConfigurationError(
                f"--normalize {text!r}: use one of {', '.join(NORMALIZATIONS)} "
                "or scale=S,mean=a:b:c,std=a:b:c"
            )
        fields[name] = value
    try:
        scale = float(fields.get("scale", 1 / 255))
        mean = tuple(float(v) for v in fields.get("mean", ":".join(["0"] * channels)).split(":"))
        std = tuple(float(v) for v in fields.get("std", ":".join(["1"] * channels)).split(":"))
    except ValueError as exc:
        raise ConfigurationError(f"--normalize {text!r}: {exc}") from exc
    if len(mean) == 1:
        mean = mean * channels
    if len(std) == 1:
        std = std * channels
    return scale, mean, std


def import_onnx(
    source: Path,
    out: Path,
    options: ImportOptions,
    samples: Sequence[np.ndarray] = (),
    tolerance: float = DEFAULT_TOLERANCE,
) -> ImportReport:
    """Import ``source`` into a new artifact directory ``out`` (must not exist); ConfigurationError, with
    one line saying what is wrong, for a bad file, options that do not fit the model, or a failed check."""
    import onnx
    import onnxruntime as ort

    if not source.is_file():
        raise ConfigurationError(f"model file not found: {source}")
    if out.exists():
        raise ConfigurationError(f"{out} already exists")
    if options.output not in _TASK_OUTPUTS.get(options.task, ()):
        allowed = (
            ", ".join(_TASK_OUTPUTS.get(options.task, ()))
            or "none (import supports classify, detect, segment)"
        )
        raise ConfigurationError(
            f"--output {options.output} does not fit --task {options.task.value}: use {allowed}"
        )
    try:
        model = onnx.load(str(source))
        session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    except Exception as exc:  # protobuf and ORT raise their own types for a file that is not a model
        raise ConfigurationError(f"cannot read ONNX model {source}: {exc}") from exc
    spec = _preprocess_spec(session, options)
    frames = list(samples) or _synthetic_frames(spec)
    batch = preprocess_batch(frames, spec)
    foreign = np.transpose(batch, (0, 3, 1, 2)) if options.layout == "nchw" else batch
    try:
        raw = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(foreign)})[0]
    except Exception as exc:
        raise ConfigurationError(
            f"the model does not run on a {options.layout.upper()} input of {list(foreign.shape)}: {exc}"
        ) from exc
    box_scale = (float(spec.width), float(spec.height)) if options.box_units == "pixels" else (1.0, 1.0)
    try:
        plan = plan_output(
            options.output, tuple(raw.shape), len(options.classes), options.layout, options.logits, box_scale
        )
        wrapped = wrap_onnx(model, options.layout, plan)
    except ValueError as exc:
        raise ConfigurationError(f"{source.name}: {exc}") from exc
    expected = reference_outputs(raw, options.layout, plan).astype(np.float32)
    metadata = _metadata(source, options, spec, plan.kind, tuple(raw.shape), plan.yolo_style)
    out.mkdir(parents=True)
    try:
        (out / ONNX_FILE).write_bytes(wrapped.SerializeToString())
        check = ort.InferenceSession(str(out / ONNX_FILE), providers=["CPUExecutionProvider"])
        got = check.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
        if got.shape != expected.shape or not diff <= tolerance:
            raise ConfigurationError(
                f"imported {source.name} differs from the original by {diff:.3g} (tolerance {tolerance:g}), "
                f"shapes {list(got.shape)} vs {list(expected.shape)}; not written"
            )
        mismatch = _decoded_mismatch(got, expected, metadata)
        if mismatch:
            raise ConfigurationError(f"imported {source.name} decodes differently: {mismatch}; not written")
        np.savez_compressed(out / PARITY_FILE, input=batch, output=got)
        metrics = {
            **metadata.metrics,
            "import": {**metadata.metrics["import"], "max_abs_diff": diff, "parity_images": len(batch)},
        }
        metadata = metadata.model_copy(update={"metrics": metrics})
        write_metadata(out, metadata)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # an artifact is written whole or not at all
        raise
    return ImportReport(out, metadata, diff, len(batch), tuple(raw.shape))


def check_parity(artifact: Path, tolerance: float = DEFAULT_TOLERANCE) -> float:
    """Re-run an imported artifact on its stored parity sample; the max abs difference (ConfigurationError
    above ``tolerance``): a registry copy or a different ONNX Runtime build can be checked with it."""
    import onnxruntime as ort

    stored = np.load(artifact / PARITY_FILE)
    session = ort.InferenceSession(str(artifact / ONNX_FILE), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: stored["input"]})[0]
    diff = float(np.max(np.abs(got - stored["output"])))
    if not diff <= tolerance:
        raise ConfigurationError(f"{artifact} differs from its parity sample by {diff:.3g}")
    return diff


def _preprocess_spec(session: InferenceSession, options: ImportOptions) -> PreprocessSpec:
    shape = list(session.get_inputs()[0].shape)
    if len(shape) != 4:
        raise ConfigurationError(f"the model's input has shape {shape}; an image model takes 4 dimensions")
    channels, height, width = (
        (shape[1], shape[2], shape[3]) if options.layout == "nchw" else (shape[3], shape[1], shape[2])
    )
    if channels not in (1, 3):
        raise ConfigurationError(
            f"input {shape} has {channels} channels in {options.layout.upper()}: is --layout right?"
        )
    if options.input_size is not None:
        width, height = options.input_size
    if not (isinstance(width, int) and isinstance(height, int)):
        raise ConfigurationError(f"the model's input size is dynamic ({shape}): pass --input-size WxH")
    color: ColorOrder = "grey" if channels == 1 else options.color
    if channels == 3 and color == "grey":
        raise ConfigurationError("--color grey needs a 1-channel model")
    scale, mean, std = parse_normalization(options.normalize, channels)
    try:
        return PreprocessSpec(
            width=width,
            height=height,
            channels=channels,
            color_order=color,
            scale=scale,
            mean=mean,
            std=std,
            resize=options.resize,
        )
    except ValueError as exc:
        raise ConfigurationError(f"preprocessing: {exc}") from exc


def _metadata(
    source: Path,
    options: ImportOptions,
    spec: PreprocessSpec,
    kind: str,
    output_shape: tuple[int, ...],
    yolo_style: str,
) -> ModelMetadata:
    decoding: dict[str, float | int | str] = {}
    if kind == "yolo":
        decoding = {
            "head": POINTS_HEAD,
            "min_score": options.min_score,
            "nms_iou": options.nms_iou,
            "max_detections": 100,
        }
    elif kind == "centernet":
        decoding = {
            "stride": max(1, round(spec.height / output_shape[2 if options.layout == "nchw" else 1])),
            "min_score": options.min_score,
            "nms_iou": options.nms_iou,
        }
    provenance: dict[str, Any] = {
        "source": source.name,
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "layout": options.layout,
        "output": kind,
        "output_shape": list(output_shape),
        "logits": options.logits,
    }
    if kind == "yolo":
        provenance.update(yolo_style=yolo_style, box_units=options.box_units)
    try:
        return ModelMetadata(
            name=options.name or source.stem,
            version=options.version or new_version(),
            task=options.task,
            classes=options.classes,
            preprocess=spec,
            architecture=f"imported-onnx:{kind}",
            decoding=decoding,
            thresholds={"defect": options.defect_threshold},
            metrics={"import": provenance},
            code_version=code_version(),
            files=ArtifactFiles(keras=None, onnx=ONNX_FILE),
        )
    except ValueError as exc:  # pydantic: duplicate class names, ...
        raise ConfigurationError(f"model metadata: {exc}") from exc


def _decoded_mismatch(got: np.ndarray, expected: np.ndarray, metadata: ModelMetadata) -> str:
    for i, (a, b) in enumerate(
        zip(decode_outputs(got, metadata), decode_outputs(expected, metadata), strict=True)
    ):
        if abs(a.defect_score - b.defect_score) > 1e-3:
            return f"image {i}: defect score {a.defect_score:.4f} vs {b.defect_score:.4f}"
        if sorted(d.label for d in a.detections) != sorted(d.label for d in b.detections):
            return f"image {i}: detections differ"
    return ""


def _synthetic_frames(spec: PreprocessSpec, count: int = 4) -> list[np.ndarray]:
    # Frames at 5:4 like the line cameras, with defects, so letterboxing and real activations are covered.
    generator = SyntheticDefectGenerator(
        width=spec.width * 5 // 4, height=spec.height, channels=spec.channels, defect_rate=0.7, seed=99
    )
    frames = [generator.generate(i).image for i in range(count)]
    return [f for f in frames if f is not None]
