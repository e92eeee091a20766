"""Cost of the detector heads: parameters, multiply-add FLOPs and ONNX Runtime img/s at batch 1 and 32.

    .venv/bin/python bench/bench_detector_cost.py --input-size 320 --channels 1

Weights do not change the cost, so untrained networks are exported (tf2onnx, as ``lineguard export``
does). FLOPs count 2 x multiply-adds of the convolutions (everything else is small next to them).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def conv_flops(model: object) -> int:
    import keras

    total = 0
    for layer in model.layers:  # type: ignore[attr-defined]
        if isinstance(layer, keras.layers.Conv2D):
            for node in layer._inbound_nodes:
                out = node.outputs[0].shape
                kh, kw = layer.kernel_size
                cin = node.input_tensors[0].shape[-1]
                total += 2 * out[1] * out[2] * kh * kw * cin * out[3]
    return int(total)


def onnx_rate(model: object, shape: tuple[int, int, int], batch: int, seconds: float) -> float:
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec((None, *shape), tf.float32, name="image"),)

    @tf.function(input_signature=signature)
    def serve(image: tf.Tensor) -> tf.Tensor:
        return model(image, training=False)  # type: ignore[operator]

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=17)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    session.run(None, {name: x})
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {name: x})
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input-size", type=int, default=320)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    from vision.nets.detector import build_detector
    from vision.nets.fcos import build_fcos_detector

    shape = (args.input_size, args.input_size, args.channels)
    for name, build in (("centernet", build_detector), ("fcos", build_fcos_detector)):
        model = build(shape, args.classes)
        rates = [onnx_rate(model, shape, b, args.seconds) for b in (1, 32)]
        print(
            f"{name:9s} {args.input_size}x{args.input_size}x{args.channels}: "
            f"params {model.count_params() / 1e6:.3f} M, conv GFLOPs {conv_flops(model) / 1e9:.2f}, "
            f"ONNX Runtime img/s batch 1 {rates[0]:.1f}, batch 32 {rates[1]:.1f}"
        )


if __name__ == "__main__":
    main()
