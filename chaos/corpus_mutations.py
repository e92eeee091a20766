"""The corpus's mutations: each turns a seeded context into one poison record (value, headers) and the
dead-letter reason the worker's validation order gives it. ``MUTATIONS`` names them; the names are the case
kinds of ``chaos.corpus``.
"""

from __future__ import annotations

import hashlib
import io
import math
import string
import struct
from collections.abc import Callable
from datetime import UTC, datetime

from fastavro import schemaless_writer

from chaos.bombs import pxm_bomb, tiff_bomb, webp_bomb
from chaos.corpus_frames import (
    Headers,
    MutationContext,
    R,
    frame_dict,
    parses_as_frame,
    write_frame,
)
from schemas.catalog import compile_schema
from schemas.framing import confluent_header, single_object_header
from schemas.records import (
    InspectionResult,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)
from schemas.serde import AvroRecordSerializer
from schemas.topics import HEADER_SCHEMA

Mutation = Callable[[MutationContext], tuple[R, bytes | None, Headers]]


def _random_bytes(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    size = c.rng.choice((1, 2, 9, 10, 64, 1000, c.rng.randrange(1, 4096)))
    data = bytearray(c.rng.randbytes(size))
    data[0] = c.rng.choice([b for b in range(256) if b not in (0x00, 0xC3)])  # neither framing's magic
    return R.UNDECODABLE_RECORD, bytes(data), ()


def _empty_value(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    return R.UNDECODABLE_RECORD, c.rng.choice((b"", None)), ()


def _truncated_avro(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    value = write_frame(frame_dict(c.rng, c.images.size, c.rng.choice(c.images.jpeg)))
    return R.UNDECODABLE_RECORD, value[: c.rng.randrange(1, len(value))], ()


def _trailing_garbage(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    value = write_frame(frame_dict(c.rng, c.images.size, c.rng.choice(c.images.jpeg)))
    return R.UNDECODABLE_RECORD, value + c.rng.randbytes(c.rng.randrange(1, 64)), ()


def _bit_flipped_avro(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """Flip bits in the record structure (not the image bytes) until the reader no longer accepts it."""
    image = c.rng.choice(c.images.jpeg)
    datum = frame_dict(c.rng, c.images.size, image)
    value = bytearray(write_frame(datum))
    image_at = bytes(value).find(image)
    structure = [i for i in range(10, len(value)) if not image_at <= i < image_at + len(image)]
    for _ in range(64):
        candidate = bytearray(value)
        for _ in range(c.rng.randint(1, 4)):
            position = c.rng.choice(structure)
            candidate[position] ^= 1 << c.rng.randrange(8)
        if not parses_as_frame(bytes(candidate)):
            return R.UNDECODABLE_RECORD, bytes(candidate), ()
    # Every flip still parsed (rare): fall back to a flip that always breaks the record, a negative width.
    datum["width"] = -datum["width"]
    return R.UNDECODABLE_RECORD, write_frame(datum), ()


def _flipped_fingerprint(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    value = bytearray(write_frame(frame_dict(c.rng, c.images.size, c.rng.choice(c.images.jpeg))))
    value[c.rng.randrange(2, 10)] ^= 1 << c.rng.randrange(8)
    return R.UNKNOWN_SCHEMA, bytes(value), ()


def _foreign_schema(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A valid single-object record of a schema the worker has never seen."""
    kinds = {"string": "x", "long": 7, "double": 1.5, "bytes": b"\x00\x01", "boolean": True}
    names = c.rng.sample(sorted(kinds), c.rng.randint(1, len(kinds)))
    letters = "".join(c.rng.choices(string.ascii_letters, k=8))
    definition = {
        "type": "record",
        "name": f"Foreign{letters}",
        "namespace": "com.example.other",
        "fields": [{"name": f"f_{name}", "type": name} for name in names],
    }
    schema = compile_schema(definition)
    buffer = io.BytesIO()
    buffer.write(single_object_header(schema.fingerprint))
    schemaless_writer(buffer, schema.parsed, {f"f_{name}": kinds[name] for name in names})
    headers = ((HEADER_SCHEMA, schema.full_name.encode()),)
    return R.UNKNOWN_SCHEMA, buffer.getvalue(), headers


def _other_known_schema(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A valid InspectionResult (a schema lineguard ships) published to the frames topic by mistake."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    result = InspectionResult(
        camera_id="bad-cam-0",
        line_id="line-bad",
        station_id="station-bad",
        frame_number=c.rng.randrange(1 << 30),
        source=KafkaCoordinates(topic="t", partition=0, offset=c.rng.randrange(1000)),
        model=ModelInfo(name="m", version="v", task=Task.CLASSIFICATION),
        verdict=Verdict.OK,
        captured_at=now,
        received_at=now,
        inferred_at=now,
        batch_size=1,
        worker_id="w",
    )
    headers = ((HEADER_SCHEMA, InspectionResult.avro_name.encode()),)
    return R.UNKNOWN_SCHEMA, AvroRecordSerializer(InspectionResult)(result), headers


def _confluent_framed(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """Confluent Schema Registry framing with a schema id, but the worker runs without a registry."""
    body = write_frame(frame_dict(c.rng, c.images.size, c.rng.choice(c.images.jpeg)))[10:]
    return R.UNKNOWN_SCHEMA, confluent_header(c.rng.randrange(1, 1 << 31)) + body, ()


def _invalid_field(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """Avro that decodes but breaks the contract: bad channel count, non-positive size, negative frame."""
    datum = frame_dict(c.rng, c.images.size, c.rng.choice(c.images.jpeg))
    choice = c.rng.randrange(5)
    if choice == 0:
        datum["channels"] = c.rng.choice((0, 2, 4, 5, -1, 255, 2**31 - 1))
    elif choice == 1:
        datum["width"] = c.rng.choice((0, -1, -(2**31)))
    elif choice == 2:
        datum["height"] = c.rng.choice((0, -128))
    elif choice == 3:
        datum["frame_number"] = -c.rng.randrange(1, 1 << 62)
    else:
        datum["camera_id"] = ""
    return R.UNDECODABLE_RECORD, write_frame(datum), ()


def _truncated_image(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    use_png = c.rng.random() < 0.4
    image = c.rng.choice(c.images.png if use_png else c.images.jpeg)
    cut = image[: c.rng.randrange(1, len(image) - 1)]
    encoding = "PNG" if use_png else "JPEG"
    return R.CORRUPT_IMAGE, write_frame(frame_dict(c.rng, c.images.size, cut, encoding)), ()


def _corrupt_png(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """Bits flipped inside the PNG's IDAT data: the chunk CRC no longer matches."""
    image = bytearray(c.rng.choice(c.images.png))
    start = image.find(b"IDAT") + 4
    length = struct.unpack(">I", image[start - 8 : start - 4])[0]
    for _ in range(c.rng.randint(1, 8)):
        image[start + c.rng.randrange(length)] ^= 1 << c.rng.randrange(8)
    return R.CORRUPT_IMAGE, write_frame(frame_dict(c.rng, c.images.size, bytes(image), "PNG")), ()


def _corrupt_jpeg(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A JPEG whose entropy-coded data is cut off by a premature end-of-image marker."""
    image = c.rng.choice(c.images.jpeg)
    scan = image.find(b"\xff\xda")
    middle = c.rng.randrange(scan + 20, len(image) - 20)
    broken = image[:middle] + b"\xff\xd9"
    return R.CORRUPT_IMAGE, write_frame(frame_dict(c.rng, c.images.size, broken, "JPEG")), ()


def _not_an_image(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    garbage = b"\x01" + c.rng.randbytes(c.rng.randrange(1, 2048))  # no image format starts with 0x01
    encoding = c.rng.choice(("JPEG", "PNG", "UNKNOWN"))
    return R.CORRUPT_IMAGE, write_frame(frame_dict(c.rng, c.images.size, garbage, encoding)), ()


def _png_labelled_jpeg(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """Record says JPEG, bytes are a PNG."""
    image = c.rng.choice(c.images.png)
    return R.CORRUPT_IMAGE, write_frame(frame_dict(c.rng, c.images.size, image, "JPEG")), ()


def _empty_image(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    encoding = c.rng.choice(("JPEG", "PNG", "UNKNOWN"))
    return R.EMPTY_IMAGE, write_frame(frame_dict(c.rng, c.images.size, b"", encoding)), ()


def _one_pixel_image(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A 1x1 image in a frame that declares the camera's size."""
    use_png = c.rng.random() < 0.5
    image = c.images.pixel_png if use_png else c.images.pixel_jpeg
    datum = frame_dict(c.rng, c.images.size, image, "PNG" if use_png else "JPEG")
    return R.WRONG_DIMENSIONS, write_frame(datum), ()


def _declared_size_mismatch(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    use_png = c.rng.random() < 0.4
    image = c.rng.choice(c.images.png if use_png else c.images.jpeg)
    datum = frame_dict(c.rng, c.images.size, image, "PNG" if use_png else "JPEG")
    delta = c.rng.choice((1, 2, 7, 64, c.images.size))
    field_name = c.rng.choice(("width", "height"))
    datum[field_name] = c.images.size + delta if c.rng.random() < 0.5 else max(1, c.images.size - delta)
    if datum[field_name] == c.images.size:
        datum[field_name] += 1
    return R.WRONG_DIMENSIONS, write_frame(datum), ()


def _huge_declared_dimensions(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """The record declares more pixels than the worker's bound (the image itself is small)."""
    datum = frame_dict(c.rng, c.images.size, c.rng.choice(c.images.jpeg))
    side = c.rng.choice((2**31 - 1, 65_535, int(c.limits.max_image_pixels**0.5) + 1))
    datum["width"] = side
    datum["height"] = c.rng.choice((side, c.limits.max_image_pixels // side + 1))
    return R.OVERSIZE, write_frame(datum), ()


def _huge_jpeg_header(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A decompression bomb: the JPEG's own header claims a huge size; the record claims the same or not."""
    image = bytearray(c.rng.choice(c.images.jpeg))
    sof = _find_sof(image)
    # Below libjpeg's 65,500 limit: above it the header itself is refused (CORRUPT_IMAGE, not OVERSIZE).
    side = c.rng.choice((65_000, 40_000, int(c.limits.max_image_pixels**0.5) + 16))
    struct.pack_into(">HH", image, sof + 5, side, side)  # SOFn: length(2) precision(1) height(2) width(2)
    datum = frame_dict(c.rng, c.images.size, bytes(image))
    if c.rng.random() < 0.5:
        datum["width"] = datum["height"] = side  # the record agrees with the bomb: only the bound stops it
    return R.OVERSIZE, write_frame(datum), ()


def _png_bomb(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A small, valid PNG of zeros whose size is above the pixel bound (decoding it would cost the memory)."""
    side = math.isqrt(c.limits.max_image_pixels) + 1 + c.rng.randrange(64)
    return R.OVERSIZE, write_frame(frame_dict(c.rng, c.images.size, c.images.png_bomb(side), "PNG")), ()


def _other_format_bomb(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A WebP, TIFF or PGM that decodes (or allocates) far above the pixel bound, in a record that declares
    the camera's size and PNG or no encoding: only JPEG and PNG may be decoded, so it never is."""
    side = c.rng.choice((16_000, 8_192, math.isqrt(c.limits.max_image_pixels) + 1))
    bomb = c.rng.choice((webp_bomb, tiff_bomb, pxm_bomb))(side)
    datum = frame_dict(c.rng, c.images.size, bomb, c.rng.choice(("UNKNOWN", "PNG")))
    return R.CORRUPT_IMAGE, write_frame(datum), ()


def _webp_bomb(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    side = c.rng.choice((16_000, 12_000, math.isqrt(c.limits.max_image_pixels) + 1))
    datum = frame_dict(c.rng, c.images.size, webp_bomb(side), c.rng.choice(("UNKNOWN", "PNG")))
    return R.CORRUPT_IMAGE, write_frame(datum), ()


def _tiff_bomb(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    side = c.rng.choice((16_000, 12_000, math.isqrt(c.limits.max_image_pixels) + 1))
    datum = frame_dict(c.rng, c.images.size, tiff_bomb(side), c.rng.choice(("UNKNOWN", "PNG")))
    return R.CORRUPT_IMAGE, write_frame(datum), ()


def _long_strings(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """A valid image in a record whose ids or metadata exceed the worker's string bounds (results and
    defect events copy them, several times per event)."""
    datum = frame_dict(c.rng, c.images.size, c.rng.choice(c.images.jpeg))
    choice = c.rng.randrange(4)
    if choice == 0:
        datum[c.rng.choice(("camera_id", "line_id", "station_id"))] = "x" * c.rng.choice((257, 100_000))
    elif choice == 1:
        datum["part_id"] = "p" * 5000
    elif choice == 2:
        datum["metadata"] = {f"k{i}": "v" for i in range(c.rng.choice((65, 5000)))}
    else:
        datum["metadata"] = {"lot": "v" * 20_000}
    return R.OVERSIZE, write_frame(datum), ()


def _find_sof(image: bytes | bytearray) -> int:
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        at = bytes(image).find(marker)
        if at >= 0:
            return at
    raise ValueError("no SOF marker")


def _oversize_inline(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """Inline image bytes above the worker's byte bound (a valid JPEG prefix, padded)."""
    image = c.rng.choice(c.images.jpeg)
    padding = c.limits.max_image_bytes - len(image) + c.rng.randrange(1, 4096)
    oversized = image + bytes(padding)  # bytes after EOI: still starts like a JPEG
    return R.OVERSIZE, write_frame(frame_dict(c.rng, c.images.size, oversized)), ()


def _oversize_reference(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    datum = frame_dict(c.rng, c.images.size, b"")
    datum["image_ref"] = {
        "uri": c.target.uri,
        "sha256": c.target.sha256,
        "size_bytes": c.limits.max_image_bytes + c.rng.randrange(1, 1 << 40),
    }
    return R.OVERSIZE, write_frame(datum), ()


def _wrong_channels(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    """The record says colour, the image is grey (or the other way round)."""
    use_png = c.rng.random() < 0.4
    grey = c.rng.random() < 0.5
    if use_png:
        image = c.rng.choice(c.images.grey_png if grey else c.images.png)
    else:
        image = c.rng.choice(c.images.grey_jpeg if grey else c.images.jpeg)
    datum = frame_dict(c.rng, c.images.size, image, "PNG" if use_png else "JPEG")
    datum["channels"] = 3 if grey else 1
    return R.WRONG_DIMENSIONS, write_frame(datum), ()


def _broken_claim_check(c: MutationContext) -> tuple[R, bytes | None, Headers]:
    datum = frame_dict(c.rng, c.images.size, b"")
    choice = c.rng.randrange(6)
    target = c.target
    if choice == 0:  # the file does not exist
        missing = hashlib.sha256(c.rng.randbytes(16)).hexdigest()
        reference = {
            "uri": f"gridfs://{target.database}/{target.bucket}/{missing}",
            "sha256": missing,
            "size_bytes": 1000,
        }
    elif choice == 1:  # the file exists, the hash is not its hash
        reference = {"uri": target.uri, "sha256": hashlib.sha256(c.rng.randbytes(8)).hexdigest()}
        reference["size_bytes"] = len(target.data)
    elif choice == 2:  # the file exists, the size is wrong
        reference = {"uri": target.uri, "sha256": target.sha256, "size_bytes": len(target.data) + 1}
    elif choice == 3:  # not a claim-check URI at all
        uri = c.rng.choice(("http://example.invalid/x.jpg", "gridfs://", "gridfs://db", "\x00\xff"))
        reference = {"uri": uri, "sha256": target.sha256, "size_bytes": len(target.data)}
    elif choice == 4:  # another database or bucket than the worker's, or a name MongoDB refuses
        database = c.rng.choice(("admin", "a$b", "a.b", "a b", f"{target.database}x", target.database))
        bucket = target.bucket if database != target.database else c.rng.choice(("fs", "a$b", "x.y"))
        reference = {
            "uri": f"gridfs://{database}/{bucket}/{target.sha256}",
            "sha256": target.sha256,
            "size_bytes": len(target.data),
        }
    else:  # a bucket that does not exist
        reference = {
            "uri": f"gridfs://{target.database}/no-such-bucket/{target.sha256}",
            "sha256": target.sha256,
            "size_bytes": len(target.data),
        }
    datum["image_ref"] = reference
    return R.CLAIM_CHECK_FAILED, write_frame(datum), ()


MUTATIONS: dict[str, Mutation] = {
    "random-bytes": _random_bytes,
    "empty-value": _empty_value,
    "truncated-avro": _truncated_avro,
    "trailing-garbage": _trailing_garbage,
    "bit-flipped-avro": _bit_flipped_avro,
    "flipped-fingerprint": _flipped_fingerprint,
    "foreign-schema": _foreign_schema,
    "other-known-schema": _other_known_schema,
    "confluent-framed": _confluent_framed,
    "invalid-field": _invalid_field,
    "truncated-image": _truncated_image,
    "corrupt-png": _corrupt_png,
    "corrupt-jpeg": _corrupt_jpeg,
    "not-an-image": _not_an_image,
    "png-labelled-jpeg": _png_labelled_jpeg,
    "empty-image": _empty_image,
    "one-pixel-image": _one_pixel_image,
    "declared-size-mismatch": _declared_size_mismatch,
    "huge-declared-dimensions": _huge_declared_dimensions,
    "huge-jpeg-header": _huge_jpeg_header,
    "png-bomb": _png_bomb,
    "oversize-inline": _oversize_inline,
    "oversize-reference": _oversize_reference,
    "wrong-channels": _wrong_channels,
    "broken-claim-check": _broken_claim_check,
    "webp-bomb": _webp_bomb,
    "tiff-bomb": _tiff_bomb,
    "other-format-bomb": _other_format_bomb,
    "long-strings": _long_strings,
}
