"""Content hashes for duplicate detection: SHA-256 for exact copies, perceptual hashes for near copies.

Near duplicates (the same part photographed twice, a re-encoded or slightly resized copy) must match on both a
difference hash (dHash: brightness gradients) and a DCT hash (pHash: low frequencies) within a Hamming
distance. Requiring both keeps look-alike but different parts apart, which matters on a production line where
every good part looks much like every other. Candidate pairs come from banding the dHash (pigeonhole: two
hashes within distance t agree exactly on at least one of t + 1 bands), so a large dataset is not compared
pair by pair.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Sequence

import cv2
import numpy as np


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bool(bit))
    return value


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: is each pixel of a 9x8 thumbnail brighter than its right neighbour?"""
    small = cv2.resize(_grey(image), (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return _bits_to_int(small[:, 1:] > small[:, :-1])


def phash(image: np.ndarray) -> int:
    """64-bit perceptual hash: the 8x8 lowest DCT frequencies of a 32x32 thumbnail against their median."""
    small = cv2.resize(_grey(image), (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]
    # The DC term is the mean brightness; leaving it out of the median keeps the hash about structure.
    median = float(np.median(low.ravel()[1:]))
    return _bits_to_int(low > median)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _bands(value: int, count: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, 64, count + 1).astype(int)
    return [
        (i, (value >> int(lo)) & ((1 << int(hi - lo)) - 1))
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]


def near_duplicate_groups(
    dhashes: Sequence[int], phashes: Sequence[int], max_distance: int = 4
) -> list[list[int]]:
    """Groups (indices, sorted) of images whose dHash and pHash are both within ``max_distance`` bits of
    another member's; singletons are left out. Groups are the connected components of that relation.

    Images with identical hash pairs are merged first, so a batch of thousands of blank frames (all hashing
    alike) costs one comparison, not millions; the remaining pairs come from the dHash bands.
    """
    if not 0 <= max_distance < 64:
        raise ValueError(f"max_distance must be within [0, 63], got {max_distance}")
    members: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, pair in enumerate(zip(dhashes, phashes, strict=True)):
        members[pair].append(index)
    nodes = list(members)
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for node, (value, _) in enumerate(nodes):
        for band in _bands(value, max_distance + 1):
            buckets[band].append(node)
    parent = list(range(len(nodes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    checked: set[tuple[int, int]] = set()
    for bucket in buckets.values():
        for position, i in enumerate(bucket):
            for j in bucket[position + 1 :]:
                if (i, j) in checked:
                    continue
                checked.add((i, j))
                (d1, p1), (d2, p2) = nodes[i], nodes[j]
                if hamming(d1, d2) <= max_distance and hamming(p1, p2) <= max_distance:
                    parent[root(j)] = root(i)
    groups: dict[int, list[int]] = defaultdict(list)
    for node, pair in enumerate(nodes):
        groups[root(node)].extend(members[pair])
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])
