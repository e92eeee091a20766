"""Measure lineguard's Avro serde on camera-sized frames against raw fastavro.

    .venv/bin/python bench/bench_serde.py [--size 150000] [--seconds 2.0] [--json]

Encodes and decodes a Frame with single-object encoding, with Confluent framing (mock registry) and with
schema resolution from a newer writer, next to fastavro's ``schemaless_writer``/``schemaless_reader`` on the
same dict. Prints records/s (best wall-clock window, and per CPU-second of this process: the figure to trust
on a busy machine), MB/s, the ratio ours/raw per CPU-second and the minor page faults per call. lineguard's
figures include ``to_dict`` (encode) and ``from_dict`` with the record's validation (decode).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_reader, schemaless_writer

from schemas.catalog import compile_schema, shipped_schema
from schemas.framing import single_object_header
from schemas.records import Box, Frame, GroundTruth, ImageEncoding
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer


def sample_frame(size: int) -> Frame:
    return Frame(
        camera_id="cam-01",
        line_id="line-1",
        station_id="station-3",
        frame_number=123_456,
        captured_at=datetime.now(UTC),
        width=1280,
        height=1024,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=os.urandom(size),  # incompressible, like JPEG
        part_id="P-1",
        ground_truth=GroundTruth(
            labels=("scratch",),
            boxes=(Box(label="scratch", x_min=0.125, y_min=0.125, x_max=0.25, y_max=0.375),),
        ),
        metadata={"exposure_us": "800"},
    )


@dataclass
class Figure:
    """One operation's measurement."""

    per_s: float = 0.0  # best wall-clock window
    per_cpu_s: float = 0.0  # calls per second of this process's CPU time, all windows
    page_faults: float = 0.0  # minor page faults per call
    calls: int = 0
    cpu_s: float = 0.0
    faults: int = 0


def measure(operations: dict[str, Callable[[], Any]], seconds: float, rounds: int = 10) -> dict[str, Figure]:
    """Rates and page faults of each operation.

    The operations take turns in short windows (``rounds`` each, ``seconds`` in all per operation), so each
    sees the same background load. Two rates: the best wall-clock window, and calls per CPU-second of this
    process, which other work on a shared machine disturbs far less. Page faults count large buffers that the
    allocator maps and unmaps per call.
    """
    figures = {name: Figure() for name in operations}
    for operation in operations.values():
        for _ in range(50):
            operation()
    for _ in range(rounds):
        for name, operation in operations.items():
            figure = figures[name]
            calls = 0
            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            cpu_before = time.process_time()
            start = time.perf_counter()
            deadline = start + seconds / rounds
            while True:
                for _ in range(20):
                    operation()
                calls += 20
                now = time.perf_counter()
                if now >= deadline:
                    break
            figure.cpu_s += time.process_time() - cpu_before
            figure.faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
            figure.per_s = max(figure.per_s, calls / (now - start))
            figure.calls += calls
    for figure in figures.values():
        figure.per_cpu_s = figure.calls / figure.cpu_s if figure.cpu_s else 0.0
        figure.page_faults = figure.faults / figure.calls
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=150_000, help="encoded image bytes per frame")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    frame = sample_frame(args.size)
    schema = shipped_schema("Frame")
    datum = frame.to_dict()

    serializer = AvroRecordSerializer(Frame)
    deserializer = AvroRecordDeserializer(Frame)
    encoded = serializer(frame)
    assert deserializer(encoded) == frame

    registry = SchemaRegistryClient.new_client({"url": "mock://bench"})
    ctx = SerializationContext("bench.frames", MessageField.VALUE)
    framed_serializer = AvroRecordSerializer(Frame, registry)
    framed_deserializer = AvroRecordDeserializer(Frame, registry)
    framed = framed_serializer(frame, ctx)
    assert framed_deserializer(framed, ctx) == frame

    v2_definition = copy.deepcopy(dict(schema.definition))
    v2_definition["fields"].append({"name": "exposure_us", "type": ["null", "long"], "default": None})
    v2 = compile_schema(v2_definition)
    v2_buffer = io.BytesIO()
    v2_buffer.write(single_object_header(v2.fingerprint))
    schemaless_writer(v2_buffer, v2.parsed, {**datum, "exposure_us": 800})
    v2_bytes = v2_buffer.getvalue()
    deserializer.register_writer_schema(v2)
    assert deserializer(v2_bytes) == frame

    body = encoded[10:]

    def raw_encode() -> bytes:
        buffer = io.BytesIO()
        buffer.write(encoded[:10])
        schemaless_writer(buffer, schema.parsed, frame.to_dict())
        return buffer.getvalue()

    def raw_decode() -> Any:
        return schemaless_reader(io.BytesIO(body), schema.parsed, None)

    figures = measure(
        {
            "raw_fastavro_encode": raw_encode,
            "raw_fastavro_decode": raw_decode,
            "single_object_encode": lambda: serializer(frame),
            "single_object_decode": lambda: deserializer(encoded),
            "confluent_encode": lambda: framed_serializer(frame, ctx),
            "confluent_decode": lambda: framed_deserializer(framed, ctx),
            "resolving_decode": lambda: deserializer(v2_bytes),
            "frame_from_dict": lambda: Frame.from_dict(datum),
        },
        args.seconds,
    )
    result: dict[str, Any] = {"frame_bytes": len(encoded)}
    for name, figure in figures.items():
        result[f"{name}_per_s"] = round(figure.per_s)
        result[f"{name}_per_cpu_s"] = round(figure.per_cpu_s)
        result[f"{name}_page_faults"] = round(figure.page_faults, 1)
    for direction in ("encode", "decode"):
        ours, raw = figures[f"single_object_{direction}"], figures[f"raw_fastavro_{direction}"]
        result[f"single_object_{direction}_mb_per_cpu_s"] = round(ours.per_cpu_s * len(encoded) / 1e6)
        result[f"{direction}_ours_over_raw"] = round(ours.per_cpu_s / raw.per_cpu_s, 3)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    result["python"] = platform.python_version()
    result["cpu_count"] = os.cpu_count()
    if args.json:
        print(json.dumps(result))
        return
    print(f"Frame of {result['frame_bytes']} bytes, {args.seconds:.1f} s per figure")
    for name, value in result.items():
        print(f"  {name:34} {value}")


if __name__ == "__main__":
    main()
