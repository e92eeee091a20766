"""Phase 3, naive: one message at a time in this process (consume, decode, predict one, ``insert_one``,
commit), with the worker's backend or Keras ``model.predict``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.stack.endpoints import Endpoints
from schemas.records import Frame
from workerbench.frames import FrameFactory, publish_backlog
from workerbench.worker_process import Deployment


def naive(
    endpoints: Endpoints,
    model: Any,
    factory: FrameFactory,
    count: int,
    predict_one: Any = None,
    key: str = "naive",
) -> dict[str, float]:
    """One message at a time: consume, decode, predict one frame, insert_one, commit (synchronously).

    ``predict_one`` (preprocessed batch of one -> defect score) defaults to the worker's backend."""
    import cv2
    from confluent_kafka import Consumer
    from pymongo import MongoClient

    from schemas.serde import AvroRecordDeserializer
    from vision.preprocess import preprocess_batch

    deployment = Deployment.create(endpoints, "naive")
    config, topics = deployment.kafka_config, deployment.topics
    publish_backlog(config, topics.frames, factory, count, None)
    deserializer = AvroRecordDeserializer(Frame)
    spec = model.metadata.preprocess
    client: Any = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
    collection = client[deployment.database]["inspections"]
    consumer = Consumer(
        {
            **config,
            "group.id": f"bench-naive-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics.frames])
    cpu_started = 0.0
    steps = dict.fromkeys(("poll", "decode", "preprocess", "predict", "insert_one", "commit"), 0.0)
    try:
        done = 0
        started: float | None = None
        while done < count:
            mark = time.perf_counter()
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            if started is None:  # the wait for the group join stays outside the clock
                started = mark = time.perf_counter()
                cpu_started = time.process_time()
            mark = _step(steps, "poll", mark)
            frame = deserializer(message.value())
            assert frame is not None
            image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
            mark = _step(steps, "decode", mark)
            tensor = preprocess_batch([image], spec)
            mark = _step(steps, "preprocess", mark)
            if predict_one is None:
                (prediction,) = model.predict(tensor)
                defect_score = float(prediction.defect_score)
            else:
                defect_score = float(predict_one(tensor))
            mark = _step(steps, "predict", mark)
            collection.insert_one(
                {
                    "_id": f"{frame.camera_id}:{frame.frame_number}",
                    "camera_id": frame.camera_id,
                    "frame_number": frame.frame_number,
                    "defect_score": defect_score,
                }
            )
            mark = _step(steps, "insert_one", mark)
            consumer.commit(message=message, asynchronous=False)
            _step(steps, "commit", mark)
            done += 1
        assert started is not None
        figures: dict[str, float] = {
            f"{key}_fps": count / (time.perf_counter() - started),
            f"{key}_frames": count,
            f"{key}_cpu_ms_per_frame": (time.process_time() - cpu_started) * 1000 / count,
        }
        figures.update({f"{key}_{name}_ms": total * 1000 / count for name, total in steps.items()})
        return figures
    finally:
        consumer.close()
        client.close()
        deployment.remove()


def keras_predict_one(model_path: Path, metadata: Any) -> Any:
    """The textbook first version: Keras ``model.predict`` called once per frame."""
    from vision.nets.build import load_keras_model  # registers lineguard's custom layers first

    keras_model = load_keras_model(model_path / (metadata.files.keras or "model.keras"))
    good = list(metadata.classes).index("good") if "good" in metadata.classes else None

    def predict(tensor: np.ndarray) -> float:
        probabilities = keras_model.predict(tensor, verbose=0)[0]
        return 1.0 - float(probabilities[good]) if good is not None else float(np.max(probabilities))

    return predict


def _step(steps: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    steps[name] += now - since
    return now
