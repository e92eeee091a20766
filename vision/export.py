"""Keras artifact -> ONNX, with a parity check against Keras.

The exported graph has one input, ``image`` (float32 NHWC, dynamic batch, already preprocessed by
:func:`vision.preprocess.preprocess_batch`), and one output, ``output``, with exactly the layout that
:func:`vision.outputs.decode_outputs` reads. Conversion goes through tf2onnx from a ``tf.function`` around
the Keras model (tf2onnx's ``from_keras`` predates Keras 3; tracing the model as a function works for any
Keras 3 model on the TensorFlow backend).

Parity: both runtimes see the same preprocessed batch (synthetic frames, so the check needs no dataset);
the maximum absolute difference of the raw outputs is reported and must stay below ``tolerance``, and the
decoded predictions (``vision.outputs``) must agree: same detections, defect scores within the tolerance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError
from vision.artifact import ONNX_FILE, ModelMetadata, artifact_file, load_metadata, write_metadata
from vision.outputs import decode_outputs
from vision.preprocess import PreprocessSpec, preprocess_batch
from vision.synthetic import SyntheticDefectGenerator

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "output"
DEFAULT_OPSET = 17
# Absolute, on raw outputs that are probabilities or fractions of the image. Untrained networks agree to
# ~1e-7; trained ones to ~1e-5 (classifier) and ~2e-3 (the detector's offset and size maps: a 0.3 px box
# edge at 128x128): float32 reductions run in different orders in oneDNN and ONNX Runtime, and deep
# trained weights amplify the difference. Decoded predictions are the same either way.
DEFAULT_TOLERANCE = 5e-3


@dataclass(frozen=True, slots=True)
class ExportReport:
    onnx_path: Path
    max_abs_diff: float
    parity_images: int
    opset: int
    size_bytes: int


def export_onnx(
    artifact_dir: str | Path,
    opset: int = DEFAULT_OPSET,
    parity_images: int = 8,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Write ``model.onnx`` into the artifact, check it against Keras and record it in ``model.json``.

    Raises :class:`ConfigurationError` when the outputs differ by more than ``tolerance`` (the ONNX file is
    removed then: an artifact never lists a model that does not match its weights).
    """
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from vision.nets.build import load_keras_model

    root = Path(artifact_dir)
    metadata = load_metadata(root)
    model = load_keras_model(artifact_file(root, "keras"))
    spec = metadata.preprocess
    signature = (tf.TensorSpec((None, *spec.input_shape), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=signature)
    def serve(image: tf.Tensor) -> tf.Tensor:
        return model(image, training=False)

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=opset)
    _rename_output(proto, OUTPUT_NAME)
    onnx_path = root / ONNX_FILE
    onnx_path.write_bytes(proto.SerializeToString())

    batch = _parity_batch(metadata.preprocess, parity_images)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    keras_out = np.asarray(serve(tf.constant(batch)))
    max_diff = float(np.max(np.abs(onnx_out - keras_out))) if keras_out.size else 0.0
    mismatch = _decoded_mismatch(onnx_out, keras_out, metadata, tolerance)
    if not max_diff <= tolerance or mismatch:
        onnx_path.unlink(missing_ok=True)
        raise ConfigurationError(
            f"ONNX export of {root} differs from Keras by {max_diff:.3g} (tolerance {tolerance:g})"
            f"{'; ' + mismatch if mismatch else ''}; not written"
        )
    files = metadata.files.model_copy(update={"onnx": ONNX_FILE})
    write_metadata(root, metadata.model_copy(update={"files": files}))
    logger.info("exported %s: max |onnx - keras| = %.3g over %d images", onnx_path, max_diff, len(batch))
    return ExportReport(onnx_path, max_diff, len(batch), opset, onnx_path.stat().st_size)


def _decoded_mismatch(
    onnx_out: np.ndarray, keras_out: np.ndarray, metadata: ModelMetadata, tolerance: float
) -> str:
    """What differs between the decoded predictions of both runtimes ("" when they agree)."""
    for i, (a, b) in enumerate(
        zip(decode_outputs(onnx_out, metadata), decode_outputs(keras_out, metadata), strict=True)
    ):
        if abs(a.defect_score - b.defect_score) > tolerance:
            return f"image {i}: defect score {a.defect_score:.4f} vs {b.defect_score:.4f}"
        found_onnx, found_keras = sorted(d.label for d in a.detections), sorted(d.label for d in b.detections)
        if found_onnx != found_keras:
            return f"image {i}: detections {found_onnx} vs {found_keras}"
    return ""


def _parity_batch(spec: PreprocessSpec, count: int) -> np.ndarray:
    # Frames at 5:4 like the line cameras, with defects, so the check covers resizing and real activations.
    generator = SyntheticDefectGenerator(
        width=spec.width * 5 // 4, height=spec.height, channels=spec.channels, defect_rate=0.7, seed=99
    )
    frames = [generator.generate(i).image for i in range(count)]
    return preprocess_batch([f for f in frames if f is not None], spec)


def _rename_output(proto: object, name: str) -> None:
    """tf2onnx names the output after the traced tensor (``Identity:0``); give it a stable name."""
    graph = proto.graph  # type: ignore[attr-defined]
    old = graph.output[0].name
    for node in graph.node:
        for i, output in enumerate(node.output):
            if output == old:
                node.output[i] = name
        for i, node_input in enumerate(node.input):
            if node_input == old:
                node.input[i] = name
    graph.output[0].name = name
