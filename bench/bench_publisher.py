"""Measure lineguard's frame publisher against a raw confluent-kafka Producer on the same frames.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29092 .venv/bin/python bench/bench_publisher.py \\
        [--frames 1500] [--size 640x480] [--rounds 3] [--json]

Both sides send the same camera frames (synthetic surfaces, JPEG-encoded once before timing) to a fresh topic
with the same producer settings (idempotent, acks=all, no compression, the same linger and size limits), the
same key and the same headers, and count deliveries in a callback; each run ends when every frame is
acknowledged. The raw producer sends Avro bytes serialized before timing; the lineguard publisher is given
the Frame records and does its whole hot path inside the timing: Avro serialization, headers with a fresh
trace id, claim-check and spool checks, produce, poll. Runs alternate raw / lineguard; the best run of each
side counts (the least disturbed by other processes on a shared machine); medians are reported too.

Prints frames/s, MB/s and CPU time per frame (whole process, librdkafka's threads included; and the median
of the producing thread alone, which other processes' load hardly disturbs) for both, and
``publisher_over_raw`` (frames/s ratio of the best runs, goal >= 0.90); ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext

from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import resolve_endpoints
from schemas.records import Frame
from schemas.serde import AvroRecordSerializer
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_SCHEMA, HEADER_TRACE_ID
from streams.encoder import EncoderOptions, FrameEncoder
from streams.publisher import FramePublisher, PublisherOptions, producer_config
from streams.sources.base import CapturedFrame
from streams.sources.spec import parse_size

DISTINCT_IMAGES = 16  # frames cycle through these many different pictures


def make_frames(count: int, width: int, height: int, quality: int) -> list[Frame]:
    from vision.synthetic import SyntheticDefectGenerator

    generator = SyntheticDefectGenerator(width=width, height=height, defect_rate=0.3, seed=1)
    encoder = FrameEncoder("bench-cam", "line-1", "station-1", EncoderOptions(jpeg_quality=quality))
    pictures = []
    for index in range(DISTINCT_IMAGES):
        image = generator.generate(index).image
        assert image is not None
        pictures.append(encoder.encode_pixels(CapturedFrame(datetime.now(UTC), image)))
    template = encoder.encode(CapturedFrame(datetime.now(UTC), generator.generate(0).image))  # type: ignore[arg-type]
    frames = []
    for number in range(count):
        picture = pictures[number % DISTINCT_IMAGES]
        frames.append(
            Frame(
                **{**template.to_dict(), "frame_number": number, "image": picture.data, "ground_truth": None}
            )
        )
    return frames


def run_raw(config: dict[str, Any], topic: str, values: list[bytes]) -> tuple[float, float, float]:
    """The baseline a careful hand-written producer achieves: produce, poll(0), wait on a full queue.
    Returns (wall, process CPU, calling-thread CPU) seconds until every frame is acknowledged."""
    producer = Producer(config)
    delivered = 0

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1

    key = b"bench-cam"
    content_type = (HEADER_CONTENT_TYPE, b"image/jpeg")
    schema = (HEADER_SCHEMA, Frame.avro_name.encode())
    started, cpu_started, thread_started = time.perf_counter(), time.process_time(), time.thread_time()
    for value in values:
        headers: list[tuple[str, str | bytes | None]] = [
            content_type,
            schema,
            (HEADER_TRACE_ID, os.urandom(16).hex().encode()),
        ]
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    thread_cpu = time.thread_time() - thread_started
    if delivered != len(values):
        raise SystemExit(f"raw producer delivered {delivered} of {len(values)} frames")
    return elapsed, cpu, thread_cpu


def run_publisher(
    kafka_config: dict[str, Any], topic: str, frames: list[Frame]
) -> tuple[float, float, float]:
    """The lineguard publisher on the same frames; returns (wall, process CPU, calling-thread CPU) seconds."""
    publisher = FramePublisher(PublisherOptions(topic=topic), kafka_config, AvroRecordSerializer(Frame))
    started, cpu_started, thread_started = time.perf_counter(), time.process_time(), time.thread_time()
    for frame in frames:
        publisher.publish(frame)
    report = publisher.close(120)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    thread_cpu = time.thread_time() - thread_started
    if report.delivered != len(frames) or not report.clean:
        raise SystemExit(f"publisher delivered {report.delivered} of {len(frames)} frames: {report}")
    return elapsed, cpu, thread_cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=2000, help="frames per run")
    parser.add_argument("--size", default="640x480", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side (alternating)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    width, height = parse_size(args.size)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or resolve_endpoints().kafka_bootstrap
    kafka_config = {"bootstrap.servers": bootstrap}
    frames = make_frames(args.frames, width, height, args.quality)
    topic = f"bench.publisher.{uuid.uuid4().hex[:8]}"
    serializer = AvroRecordSerializer(Frame)
    context = SerializationContext(topic, MessageField.VALUE)
    values = [serializer(frame, context) or b"" for frame in frames]
    total_bytes = sum(len(value) for value in values)
    raw_config = producer_config(kafka_config, PublisherOptions(topic=topic))  # the publisher's settings

    ensure_topics(kafka_config, [topic], partitions=1)
    raw_runs: list[tuple[float, float, float]] = []
    publisher_runs: list[tuple[float, float, float]] = []
    try:
        run_raw(raw_config, topic, values[:100])  # warm-up: topic metadata, leader, page cache
        for _ in range(args.rounds):
            raw_runs.append(run_raw(raw_config, topic, values))
            publisher_runs.append(run_publisher(kafka_config, topic, frames))
    finally:
        delete_topics(kafka_config, [topic])

    result: dict[str, Any] = {
        "frames_per_run": args.frames,
        "frame_size": f"{width}x{height}",
        "mean_record_bytes": round(total_bytes / args.frames),
        "rounds": args.rounds,
    }
    for side, runs in (("raw", raw_runs), ("publisher", publisher_runs)):
        best = min(elapsed for elapsed, _, _ in runs)
        result[f"{side}_frames_per_s"] = round(args.frames / best, 1)
        result[f"{side}_mb_per_s"] = round(total_bytes / best / 1e6, 2)
        result[f"{side}_cpu_us_per_frame"] = round(min(cpu for _, cpu, _ in runs) / args.frames * 1e6, 1)
        result[f"{side}_thread_cpu_us_per_frame"] = round(
            statistics.median(thread for _, _, thread in runs) / args.frames * 1e6, 1
        )
        result[f"{side}_run_seconds"] = [round(elapsed, 3) for elapsed, _, _ in runs]
    result["publisher_over_raw"] = round(result["publisher_frames_per_s"] / result["raw_frames_per_s"], 3)
    result["median_publisher_over_raw"] = round(
        statistics.median(result["raw_run_seconds"]) / statistics.median(result["publisher_run_seconds"]), 3
    )
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"{args.frames} frames of {width}x{height} JPEG, {result['mean_record_bytes']} bytes per record")
    for name, side in (("raw confluent-kafka", "raw"), ("lineguard publisher", "publisher")):
        print(
            f"{name} : {result[f'{side}_frames_per_s']:>9} frames/s  {result[f'{side}_mb_per_s']:>8} MB/s  "
            f"{result[f'{side}_cpu_us_per_frame']:>7} us CPU/frame "
            f"({result[f'{side}_thread_cpu_us_per_frame']} us in the producing thread)"
        )
    print(
        f"publisher / raw     : {result['publisher_over_raw']:>9} best runs, "
        f"{result['median_publisher_over_raw']} medians (goal >= 0.90)"
    )


if __name__ == "__main__":
    main()
