"""A seeded corpus of bad inputs for the frames topic, each with the dead-letter reason a worker must give it.

Pure: no Kafka, no MongoDB. The same seed always gives the same cases, so a failing case can be replayed by
its index. Every case is a Kafka record (key, value, headers) that a worker cannot inspect; none of them may
crash a worker, and each must come back as a dead letter with ``expected`` as its reason.

The expected reasons follow the worker's documented validation order (cheapest check first): an unreadable
record or unknown writer schema, then an empty image, then size bounds (declared pixels, referenced bytes,
inline bytes), then the claim-check, then the image bytes (magic, header dimensions, full decode).

Claim-check cases refer to one image the campaign stores in GridFS beforehand (:class:`ClaimCheckTarget`):
they name it with a wrong hash or size, or name files that do not exist.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from chaos.corpus_frames import (
    ClaimCheckTarget,
    CorpusLimits,
    Headers,
    ImageBank,
    MutationContext,
    frame_dict,
    parses_as_frame,
    write_frame,
)
from chaos.corpus_mutations import MUTATIONS, Mutation
from schemas.records import DeadLetterReason
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_SCHEMA, HEADER_TRACE_ID

__all__ = [
    "MUTATIONS",
    "BadCase",
    "BadInputCorpus",
    "ClaimCheckTarget",
    "CorpusLimits",
    "Headers",
    "Mutation",
    "frame_dict",
    "hostile_headers",
    "hostile_key",
    "parses_as_frame",
    "write_frame",
]


@dataclass(frozen=True, slots=True)
class BadCase:
    """One poison record and the dead-letter reason it must get."""

    index: int
    kind: str
    expected: DeadLetterReason
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


# -- hostile headers and keys ---------------------------------------------------------------------------


def hostile_headers(rng: random.Random) -> Headers:
    """Headers a hostile or broken producer could send: huge, binary, not UTF-8, many, a bogus trace id."""
    choice = rng.randrange(6)
    if choice == 0:
        return ((HEADER_TRACE_ID, rng.randbytes(rng.choice((1, 33, 4096, 200_000)))),)
    if choice == 1:
        return (("x-binary", b"\xff\xfe\x00\x80" + rng.randbytes(64)), (HEADER_CONTENT_TYPE, b"\xc3\x28"))
    if choice == 2:
        return tuple((f"h{i}", rng.randbytes(8)) for i in range(rng.choice((50, 500))))
    if choice == 3:
        return (("x-huge", bytes(rng.choice((100_000, 300_000)))),)
    if choice == 4:
        return ((HEADER_SCHEMA, b"\x00" * 16), (HEADER_SCHEMA, b"dev.lineguard.v1.Frame"))
    return (("\u00e9t\u00e9-\u2603", b"\xed\xa0\x80"),)  # non-ASCII name, a UTF-8-encoded surrogate value


def hostile_key(rng: random.Random) -> bytes | None:
    return rng.choice((None, b"", b"\xff\xfe\xfd", rng.randbytes(rng.choice((1, 100, 10_000)))))


# -- the generator --------------------------------------------------------------------------------------


@dataclass
class BadInputCorpus:
    """``cases(n)`` yields ``n`` seeded bad records, cycling through every kind so each is well covered."""

    seed: int
    limits: CorpusLimits
    target: ClaimCheckTarget
    hostile_header_rate: float = 0.15
    kinds: tuple[str, ...] = field(default_factory=lambda: tuple(MUTATIONS))

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(MUTATIONS)
        if unknown:
            raise ValueError(f"unknown case kinds: {', '.join(sorted(unknown))}")
        self._images = ImageBank(self.seed, self.limits.frame_size)

    def case(self, index: int) -> BadCase:
        """Case ``index`` (deterministic for a seed: replays one failing case alone)."""
        rng = random.Random(zlib.crc32(f"{self.seed}:{index}".encode()))
        kind = self.kinds[index % len(self.kinds)]
        context = MutationContext(rng, self.limits, self.target, self._images)
        expected, value, headers = MUTATIONS[kind](context)
        key: bytes | None = f"bad-cam-{rng.randrange(8)}".encode()
        if rng.random() < self.hostile_header_rate:
            headers = headers + hostile_headers(rng)
            key = hostile_key(rng)
        return BadCase(index=index, kind=kind, expected=expected, key=key, value=value, headers=headers)

    def cases(self, count: int, start: int = 0) -> Iterator[BadCase]:
        for index in range(start, start + count):
            yield self.case(index)
