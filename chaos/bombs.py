"""Decompression bombs in the image formats OpenCV reads besides JPEG and PNG, written by hand (pure, tiny).

``cv2.imdecode`` also reads WebP, TIFF and PXM; a worker that handed it such bytes would allocate the full
decoded image before it could compare the size with the record. Measured on this build (OpenCV 5.1):
``webp_bomb(16000)`` is 44 bytes and decodes to 16000x16000x3 with a peak RSS of 1.75 GB, ``tiff_bomb(16000)``
is 3.1 KB and peaks at 1.5 GB. The worker must refuse all of them without decoding.
"""

from __future__ import annotations

import struct
import zlib


def _lsb_bits(fields: list[tuple[int, int]]) -> bytes:
    """(value, width) fields packed least-significant bit first, as the WebP lossless bitstream is."""
    acc = 0
    used = 0
    for value, width in fields:
        acc |= (value & ((1 << width) - 1)) << used
        used += width
    return acc.to_bytes((used + 7) // 8, "little")


def webp_bomb(side: int) -> bytes:
    """A valid lossless WebP (VP8L) of ``side`` x ``side`` black pixels.

    No transforms, no colour cache, and every prefix code a one-symbol "simple" code: such a code takes zero
    bits per pixel, so the stream is the same ~20 bytes at any size up to WebP's 16384 limit.
    """
    if not 1 <= side <= 16384:
        raise ValueError("WebP sides are 1..16384")
    one_symbol_zero = [(1, 1), (0, 1), (0, 1), (0, 1)]  # simple code, 1 symbol, 1-bit symbol, value 0
    opaque_alpha = [(1, 1), (0, 1), (1, 1), (255, 8)]  # simple code, 1 symbol, 8-bit symbol, value 255
    header = [(0x2F, 8), (side - 1, 14), (side - 1, 14), (0, 1), (0, 3)]  # signature, size, alpha, version
    no_transform_cache_or_meta = [(0, 1), (0, 1), (0, 1)]
    codes = one_symbol_zero * 3 + opaque_alpha + one_symbol_zero  # green, red, blue, alpha, distance
    data = _lsb_bits(header + no_transform_cache_or_meta + codes)
    data += bytes(16 - len(data) % 2)  # OpenCV wants a 32-byte file at least; RIFF chunks are even
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def tiff_bomb(side: int, rows_per_strip: int = 64) -> bytes:
    """A valid grey TIFF of ``side`` x ``side`` zeros: Deflate strips that all point at the same ~1 KB of
    compressed data, so the file grows with the number of strips only (8 bytes each)."""
    strip = zlib.compress(bytes(side * rows_per_strip), 9)
    strips = -(-side // rows_per_strip)
    long_, short = 4, 3
    entries = [
        (256, long_, 1, side),  # ImageWidth
        (257, long_, 1, side),  # ImageLength
        (258, short, 1, 8),  # BitsPerSample
        (259, short, 1, 8),  # Compression: Adobe Deflate
        (262, short, 1, 1),  # Photometric: BlackIsZero
        (273, long_, strips, 0),  # StripOffsets (patched below)
        (277, short, 1, 1),  # SamplesPerPixel
        (278, long_, 1, rows_per_strip),  # RowsPerStrip
        (279, long_, strips, 0),  # StripByteCounts (patched below)
        (284, short, 1, 1),  # PlanarConfiguration: contiguous
    ]
    offsets_at = 8 + 2 + 12 * len(entries) + 4
    counts_at = offsets_at + 4 * strips
    data_at = counts_at + 4 * strips
    ifd = [struct.pack("<H", len(entries))]
    for tag, kind, count, value in entries:
        value = {273: offsets_at, 279: counts_at}.get(tag, value)
        if kind == long_:
            ifd.append(struct.pack("<HHII", tag, kind, count, value))
        else:
            ifd.append(struct.pack("<HHIHH", tag, kind, count, value, 0))
    ifd.append(struct.pack("<I", 0))  # no next IFD
    return b"".join(
        (
            b"II*\x00",
            struct.pack("<I", 8),
            *ifd,
            struct.pack(f"<{strips}I", *([data_at] * strips)),
            struct.pack(f"<{strips}I", *([len(strip)] * strips)),
            strip,
        )
    )


def pxm_bomb(side: int) -> bytes:
    """A binary PGM header declaring ``side`` x ``side`` with a few bytes of pixels (OpenCV allocates the
    whole image from the header before it finds the data short)."""
    return f"P5\n{side} {side}\n255\n".encode() + bytes(64)
