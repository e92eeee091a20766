"""Phase 1, the stage bound: the worker's decoder on a thread pool feeding the model, no Kafka, no MongoDB."""

from __future__ import annotations

import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from workerbench.common import MAX_BATCH_SIZE, MAX_WAIT_MS
from workerbench.frames import FrameFactory


def load_model(path: Path) -> Any:
    from workers.backends import load_model as load

    return load(path, "auto", os.cpu_count() or 1, warm_up_batch=MAX_BATCH_SIZE)


def make_decoder(model: Any) -> Any:
    from vision.preprocess import preprocess_batch
    from workers.decode import FrameDecoder, ImageSpec

    spec = model.metadata.preprocess

    def preprocess_one(image: np.ndarray) -> np.ndarray:
        return preprocess_batch([image], spec)[0]

    return FrameDecoder(
        preprocess_one,
        ImageSpec(width=spec.width, height=spec.height, grayscale=spec.channels == 1),
        max_image_pixels=40_000_000,
        max_image_bytes=10 * 1024 * 1024,
    )


def stage_bound(model: Any, factory: FrameFactory, count: int) -> dict[str, float]:
    """Decode on all cores beside batched inference, in process; plus each stage alone."""
    from workers.offsets import Ticket

    decoder = make_decoder(model)
    records = [factory.next()[3] for _ in range(count)]
    ticket = Ticket("bench", 0, 0, 0)
    cores = os.cpu_count() or 1

    # Decode alone, all cores.
    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        tensors = [d.tensor for d in pool.map(lambda value: decoder.decode(value, ticket), records)]
    decode_fps = count / (time.perf_counter() - started)

    # Inference alone, full batches.
    batch = np.stack(tensors[:MAX_BATCH_SIZE])
    model.predict(batch)
    rounds = max(3, min(20, count // MAX_BATCH_SIZE))
    started = time.perf_counter()
    for _ in range(rounds):
        model.predict(batch)
    batch_s = (time.perf_counter() - started) / rounds

    # Both at once: the pool decodes while the main thread runs the model (the worker's overlap).
    decoded: queue.Queue[np.ndarray] = queue.Queue()
    cpu_started = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        for value in records:
            pool.submit(lambda v: decoded.put(decoder.decode(v, ticket).tensor), value)
        done = 0
        while done < count:
            items = [decoded.get()]
            while len(items) < MAX_BATCH_SIZE and done + len(items) < count:
                try:
                    items.append(decoded.get(timeout=MAX_WAIT_MS / 1000))
                except queue.Empty:
                    break
            model.predict(np.stack(items))
            done += len(items)
    stage_fps = count / (time.perf_counter() - started)
    return {
        "stage_bound_fps": stage_fps,
        "stage_cpu_ms_per_frame": (time.process_time() - cpu_started) * 1000 / count,
        "decode_only_fps": decode_fps,
        "inference_only_fps": MAX_BATCH_SIZE / batch_s,
        "batch_inference_ms": batch_s * 1000,
    }
