"""Avro binary encoding of a record that copies its large ``bytes`` fields once, straight into the message.

Encoding a 150 KB frame with ``fastavro.schemaless_writer`` into a ``BytesIO`` copies the image three times
(fastavro's buffer, the ``BytesIO`` buffer, the final ``bytes``) through allocations large enough that glibc
serves them by ``mmap`` and trims them back, so every frame pays for ~40 fresh pages and the rate falls from
~45 k/s to ~10 k/s depending on the allocator's state (measured with ``bench/bench_serde.py``).

The Avro binary encoding of a record is the concatenation of its fields' encodings, so the record can be cut
at its top-level ``bytes`` fields: fastavro encodes the runs of other fields (small), the ``bytes`` fields are
written here (length prefix plus the caller's object, not copied), and one ``b"".join`` builds the message:
one large allocation and one copy per frame. The output is byte-identical to fastavro's (the golden tests and
``test_schemas_avro_writer.py`` check it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastavro import parse_schema, schemaless_writer

from schemas.catalog import CompiledSchema


def encode_long(value: int) -> bytes:
    """Avro ``long``: zig-zag, then base-128 varint, least significant group first."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag & ~0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


class _PartsSink:
    """A write-only file object that keeps what fastavro writes, without copying it."""

    __slots__ = ("write",)

    def __init__(self, parts: list[Any]) -> None:
        self.write = parts.append


class _BytesField:
    """A top-level ``bytes`` field, or a ``["null", "bytes"]`` union field, written without a copy."""

    __slots__ = ("bytes_index", "name", "null_index")

    def __init__(self, name: str, null_index: bytes | None, bytes_index: bytes | None) -> None:
        self.name = name
        self.null_index = null_index  # encoded union branch index, None for a plain bytes field
        self.bytes_index = bytes_index

    def append_to(self, parts: list[Any], datum: Mapping[str, Any]) -> None:
        value = datum[self.name]
        if self.bytes_index is None:
            parts.append(encode_long(len(value)))
            parts.append(value)
        elif value is None:
            parts.append(self.null_index)
        else:
            parts.append(self.bytes_index)
            parts.append(encode_long(len(value)))
            parts.append(value)


def _as_bytes_field(avro_field: Mapping[str, Any]) -> _BytesField | None:
    field_type = avro_field["type"]
    if field_type == "bytes":
        return _BytesField(avro_field["name"], None, None)
    if field_type in (["null", "bytes"], ["bytes", "null"]):
        return _BytesField(
            avro_field["name"],
            null_index=encode_long(field_type.index("null")),
            bytes_index=encode_long(field_type.index("bytes")),
        )
    return None


class RecordBodyWriter:
    """Encodes datums of one record schema, splicing its top-level bytes fields in without copying them."""

    def __init__(self, schema: CompiledSchema) -> None:
        self._steps: list[Any] = []  # parsed sub-record schemas (fastavro) and _BytesField, in field order
        named_types: dict[str, Any] = {}
        run: list[dict[str, Any]] = []
        for avro_field in schema.definition["fields"]:
            bytes_field = _as_bytes_field(avro_field)
            if bytes_field is None:
                run.append(copy.deepcopy(dict(avro_field)))
                continue
            self._flush(run, schema, named_types)
            run = []
            self._steps.append(bytes_field)
        self._flush(run, schema, named_types)

    def _flush(self, run: list[dict[str, Any]], schema: CompiledSchema, named_types: dict[str, Any]) -> None:
        if not run:
            return
        # A run of fields encodes exactly like a record of those fields. Named types defined in one run are
        # shared with later runs through ``named_types``, as they would be within the whole record.
        part = {"type": "record", "name": f"{schema.full_name}__part{len(self._steps)}", "fields": run}
        self._steps.append(parse_schema(part, named_schemas=named_types))

    def encode(self, header: bytes, datum: Mapping[str, Any]) -> bytes:
        """``header`` followed by the Avro binary encoding of ``datum``."""
        parts: list[Any] = [header]
        sink = _PartsSink(parts)
        for step in self._steps:
            if type(step) is _BytesField:
                step.append_to(parts, datum)
            else:
                schemaless_writer(sink, step, datum)  # type: ignore[arg-type]  # any object with write()
        return b"".join(parts)
