"""The two wire framings of an Avro body: Avro single-object encoding and Confluent Schema Registry framing.

* Single-object encoding (Avro specification): ``C3 01``, the 8-byte little-endian CRC-64-AVRO
  fingerprint of the writer schema's Parsing Canonical Form, then the body. Used without a registry.
* Confluent framing: magic byte ``00``, the 4-byte big-endian schema id, then the body.

The first byte tells them apart (``C3`` vs ``00``), so one reader accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import SerializationError

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_LENGTH = 10  # magic (2) + fingerprint (8)
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_LENGTH = 5  # magic (1) + schema id (4)


@dataclass(frozen=True, slots=True)
class Framing:
    """What the header of a message says: exactly one of ``fingerprint`` / ``schema_id`` is set."""

    fingerprint: bytes | None
    schema_id: int | None
    body_offset: int


def single_object_header(fingerprint: bytes) -> bytes:
    """The 10-byte single-object header for a schema with this 8-byte (little-endian) fingerprint."""
    if len(fingerprint) != 8:
        raise ValueError(f"a CRC-64-AVRO fingerprint is 8 bytes, got {len(fingerprint)}")
    return SINGLE_OBJECT_MAGIC + fingerprint


def confluent_header(schema_id: int) -> bytes:
    """The 5-byte Confluent header for a registry schema id."""
    return bytes((CONFLUENT_MAGIC,)) + schema_id.to_bytes(4, "big")


def read_framing(data: bytes) -> Framing:
    """Parse the header of a message. Raises :class:`SerializationError` when it is neither framing."""
    if data[:2] == SINGLE_OBJECT_MAGIC:
        if len(data) < SINGLE_OBJECT_HEADER_LENGTH:
            raise SerializationError(
                f"truncated Avro single-object message: {len(data)} bytes, the header alone is "
                f"{SINGLE_OBJECT_HEADER_LENGTH}"
            )
        return Framing(fingerprint=bytes(data[2:10]), schema_id=None, body_offset=SINGLE_OBJECT_HEADER_LENGTH)
    if data[:1] == b"\x00":
        if len(data) < CONFLUENT_HEADER_LENGTH:
            raise SerializationError(
                f"truncated Confluent-framed message: {len(data)} bytes, the header alone is "
                f"{CONFLUENT_HEADER_LENGTH}"
            )
        schema_id = int.from_bytes(data[1:5], "big")
        return Framing(fingerprint=None, schema_id=schema_id, body_offset=CONFLUENT_HEADER_LENGTH)
    if not data:
        raise SerializationError("empty message: expected an Avro single-object or Confluent-framed record")
    raise SerializationError(
        f"not an Avro record lineguard can read: it starts with {bytes(data[:2]).hex()}, expected c301 "
        "(Avro single-object encoding) or 00 (Confluent Schema Registry framing)"
    )
