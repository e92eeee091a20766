"""Decode + preprocess + inference stages of the worker, per backend and device (issue 17, device check).

    python bench/bench_device.py [--mode cpu|gpu|auto] [--quick] [--json]

No Kafka, no MongoDB, no network: frames are synthetic 1280x1024 JPEGs generated here, the model is the
shipped classifier (``--model DIR`` for another artifact). For each backend this host has -- ONNX Runtime
(providers from ``--device``) and Keras on each importable Keras backend (JAX, PyTorch, TensorFlow; each in
its own process, since ``KERAS_BACKEND`` is fixed at Keras' import) -- it prints:

- ``infer_ips@B``: inference images/s at batch size B, and ``p50_ms@B``, the median batch latency;
- ``decode_fps``: decode + preprocess alone, CPU (simplejpeg at reduced scale on a pool of all cores) or
  GPU (nvJPEG, ``workers.backends.gpu_decode``) as the path would be chosen for that backend;
- ``stage_fps``: the end-to-end stage bound, decode of batch k+1 overlapped with inference of batch k;
- ``gpu_busy_pct``: mean GPU utilisation sampled by ``nvidia-smi`` every 100 ms while the stages ran.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from vision.artifact import load_metadata  # noqa: E402
from vision.preprocess import PreprocessSpec, preprocess_batch  # noqa: E402

SHIPPED = REPO_ROOT / "vision" / "shipped" / "classifier"


def make_frames(count: int, width: int, height: int, quality: int = 80) -> list[bytes]:
    """Distinct JPEG frames: smooth shading, texture noise and a few dark defects (seeded)."""
    import cv2

    rng = np.random.default_rng(17)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 120 + 40 * np.sin(xx / 97.0) * np.cos(yy / 71.0)
    frames = []
    for _ in range(min(count, 32)):
        image = base[..., None] + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
        for _ in range(int(rng.integers(0, 4))):
            x, y = int(rng.integers(0, width - 80)), int(rng.integers(0, height - 80))
            image[y : y + 6, x : x + 80] -= 70  # a scratch
        ok, data = cv2.imencode(
            ".jpg", np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        assert ok
        frames.append(data.tobytes())
    return [frames[i % len(frames)] for i in range(count)]


def cpu_decode(data: bytes, spec: PreprocessSpec) -> np.ndarray:
    """The worker's CPU path: reduced-scale decode (simplejpeg, else OpenCV), then preprocess_batch."""
    if importlib.util.find_spec("simplejpeg"):
        import simplejpeg

        image = simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if spec.channels == 1 else "BGR",
            min_height=spec.height,
            min_width=spec.width,
        )
    else:
        import cv2

        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
    return preprocess_batch([image], spec)[0]


class GpuSampler:
    """``nvidia-smi`` utilisation samples (every 100 ms) while the ``with`` block runs; None without it."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self.samples.append(float(line.split(",")[0]))
            except ValueError:
                continue

    def __exit__(self, *_: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)

    @property
    def mean(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


def time_inference(
    predict: Any, spec: PreprocessSpec, batch_sizes: list[int], seconds: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rng = np.random.default_rng(1)
    for size in batch_sizes:
        batch = rng.random((size, *spec.input_shape), dtype=np.float32)
        predict(batch)  # warm-up: graph build, allocation, cuDNN algorithm choice for this shape
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(latencies) < 3:
            started = time.perf_counter()
            predict(batch)
            latencies.append(time.perf_counter() - started)
        out[f"infer_ips@{size}"] = round(size * len(latencies) / sum(latencies), 1)
        out[f"p50_ms@{size}"] = round(1000 * float(np.median(latencies)), 2)
    return out


def stage_run(decode_batch: Any, predict: Any, jpegs: list[bytes], batch_size: int) -> tuple[float, float]:
    """(decode-only frames/s, decode-overlapped-with-inference frames/s) over ``jpegs``."""
    batches = [jpegs[i : i + batch_size] for i in range(0, len(jpegs), batch_size)]
    decode_batch(batches[0])  # warm-up
    started = time.perf_counter()
    for chunk in batches:
        decode_batch(chunk)
    decode_fps = len(jpegs) / (time.perf_counter() - started)
    ready: queue.Queue[Any] = queue.Queue(maxsize=2)

    def produce() -> None:
        for chunk in batches:
            ready.put(decode_batch(chunk))
        ready.put(None)

    started = time.perf_counter()
    threading.Thread(target=produce, daemon=True).start()
    while (item := ready.get()) is not None:
        predict(item)
    return decode_fps, len(jpegs) / (time.perf_counter() - started)


def run_backend(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load the model with ``kind`` ("onnx" or "keras") on ``args.device`` and measure every stage."""
    from workers.backends import load_model
    from workers.backends.gpu_decode import NvJpegDecoder, choose_decode_path, gpu_decode_support

    model = load_model(args.model, kind, threads=0, device=args.device)
    backend = model.backend
    spec = model.metadata.preprocess
    device = getattr(backend, "device", "cpu")
    figures: dict[str, Any] = {"backend": backend.name, "device": device}
    figures["providers"] = list(getattr(backend, "providers", ())) or None
    predict = backend.predict
    keras_torch_gpu = getattr(backend, "keras_backend", "") == "torch" and device != "cpu"
    if keras_torch_gpu:
        call = backend._call  # type: ignore[attr-defined]  # the GPU tensor straight in, no host round trip

        def predict(batch: Any) -> Any:
            import torch

            if isinstance(batch, np.ndarray):
                batch = torch.from_numpy(batch).cuda()
            result = call(batch)
            torch.cuda.synchronize()
            return result

    model_device = "cpu" if device == "cpu" else "cuda"
    path, why = choose_decode_path(args.decode, gpu_decode_support(), spec, model_device)
    figures["decode_path"] = f"{path} ({why})"
    jpegs = make_frames(args.frames, args.width, args.height)
    with GpuSampler() as sampler:
        figures.update(time_inference(predict, spec, args.batch_sizes, args.seconds))
        if path == "nvjpeg":
            gpu = NvJpegDecoder(spec)

            def decode_batch(chunk: list[bytes]) -> Any:
                import torch

                out = gpu.decode(chunk)
                torch.cuda.synchronize()
                return out if keras_torch_gpu else out.cpu().numpy()
        else:
            pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)

            def decode_batch(chunk: list[bytes]) -> Any:
                return np.stack(list(pool.map(lambda d: cpu_decode(d, spec), chunk)))

        decode_fps, stage_fps = stage_run(decode_batch, predict, jpegs, max(args.batch_sizes))
    figures.update(decode_fps=round(decode_fps, 1), stage_fps=round(stage_fps, 1), gpu_busy_pct=sampler.mean)
    return figures


def keras_backends() -> list[str]:
    return [name for name in ("jax", "torch", "tensorflow") if importlib.util.find_spec(name)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("cpu", "gpu", "auto"), default="auto", help="gpu = --device cuda")
    parser.add_argument("--model", type=Path, default=SHIPPED)
    parser.add_argument("--frames", type=int, default=1024, help="JPEG frames per stage run")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--batch-sizes", default="", help="default: 1,32 on CPU, 1,32,256 on a GPU")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per batch size")
    parser.add_argument("--decode", choices=("cpu", "nvjpeg", "auto"), default="auto")
    parser.add_argument("--backends", default="onnx,keras", help="subset of onnx,keras")
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU smoke run, ~1 minute)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--one", choices=("onnx", "keras"), help=argparse.SUPPRESS
    )  # a child process's backend
    args = parser.parse_args(argv)
    args.device = {"cpu": "cpu", "gpu": "cuda", "auto": "auto"}[args.mode]
    if args.quick:
        args.frames, args.seconds = min(args.frames, 128), min(args.seconds, 1.0)
    gpu = args.mode != "cpu" and shutil.which("nvidia-smi") is not None
    sizes = args.batch_sizes or ("1,32,256" if gpu else "1,32")
    args.batch_sizes = [int(s) for s in sizes.split(",") if s.strip()]
    load_metadata(args.model)  # a wrong --model: one clear error before any child starts
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(run_backend(args.one, args)))
        return 0
    rows: list[dict[str, Any]] = []
    wanted = set(args.backends.split(","))
    if "onnx" in wanted:
        rows.append(_child(argv, "onnx", None))
    if "keras" in wanted:
        for name in keras_backends():
            rows.append(_child(argv, "keras", name))
    report = {
        "mode": args.mode,
        "frames": args.frames,
        "frame_size": f"{args.width}x{args.height}",
        "cores": os.cpu_count(),
        "model": str(args.model),
        "results": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in rows:
            print(" ".join(f"{k}={v}" for k, v in row.items()))
    return 0 if all("error" not in row for row in rows) else 1


def _child(argv: list[str] | None, kind: str, keras_backend: str | None) -> dict[str, Any]:
    """Each backend in a fresh process: frameworks fight over GPU memory and threads in one."""
    env = dict(os.environ)
    if keras_backend:
        env["KERAS_BACKEND"] = keras_backend
    command = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--one", kind]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    label = f"keras-{keras_backend}" if keras_backend else "onnxruntime"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"backend": label, "error": tail[:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
