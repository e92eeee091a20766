"""The Keras backend on the configured Keras 3 backend (TensorFlow here), pinned to the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from workers.backends import load_model
from workers.backends.keras import compiled_call, to_numpy
from workers.serving import default_model_path


def test_keras_serves_the_shipped_model_like_onnx_runtime_on_the_cpu() -> None:
    keras_model = load_model(default_model_path(), "keras", threads=1, device="cpu")
    onnx_model = load_model(default_model_path(), "onnx", threads=1, device="cpu")
    assert keras_model.backend.name == "tensorflow"  # KERAS_BACKEND unset: Keras' default
    assert getattr(keras_model.backend, "device", None) == "cpu"
    rng = np.random.default_rng(11)
    batch = rng.random((3, *keras_model.metadata.preprocess.input_shape), dtype=np.float32)
    by_keras = [p.class_scores for p in keras_model.predict(batch)]
    by_onnx = [p.class_scores for p in onnx_model.predict(batch)]
    for a, b in zip(by_keras, by_onnx, strict=True):
        assert a.keys() == b.keys()
        assert [a[k] for k in a] == pytest.approx([b[k] for k in a], abs=1e-4)


def test_the_plain_call_used_for_other_keras_backends_matches_the_traced_one() -> None:
    from vision.artifact import artifact_file, load_metadata
    from vision.nets.build import load_keras_model

    root = default_model_path()
    shape = load_metadata(root).preprocess.input_shape
    model = load_keras_model(artifact_file(root, "keras"))
    batch = np.random.default_rng(5).random((2, *shape), dtype=np.float32)
    traced = to_numpy(compiled_call(model, "tensorflow", shape)(batch))
    plain = to_numpy(compiled_call(model, "numpy", shape)(batch))
    assert traced.shape == (2, 6)
    np.testing.assert_allclose(plain, traced, atol=1e-5)
