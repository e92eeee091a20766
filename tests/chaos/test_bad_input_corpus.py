"""The bad-input corpus against the worker's decoder, in process (no Kafka, no MongoDB).

Every case must be rejected with the reason the corpus expects; none may escape as another exception
(which the live worker would turn into an ``OTHER`` dead letter) or, worse, be accepted as a frame.
Hypothesis draws seeds and case indexes; a fixed sweep covers every kind of case several times.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.corpus import MUTATIONS, BadCase, BadInputCorpus, ClaimCheckTarget, CorpusLimits
from infra.claimcheck import ClaimCheckError, parse_gridfs_uri
from schemas.records import ImageReference
from vision.preprocess import PreprocessSpec, preprocess_batch
from workers.decode import FrameDecoder, FrameRejected, ImageSpec
from workers.offsets import Ticket

LIMITS = CorpusLimits(max_image_bytes=256 * 1024, max_image_pixels=4_000_000)
MODEL_INPUT = 48


def _target() -> ClaimCheckTarget:
    import cv2

    image = cv2.imencode(".jpg", np.full((LIMITS.frame_size, LIMITS.frame_size, 3), 90, np.uint8))[1]
    return ClaimCheckTarget(database="lineguard", bucket="frames", data=image.tobytes())


TARGET = _target()


def _in_memory_claim_check(files: dict[tuple[str, str, str], bytes]) -> Callable[[ImageReference], bytes]:
    """Behaves like GridFSClaimCheckStore.get: parse the URI, refuse another database or bucket than the
    store's, find the file, check size and SHA-256."""

    def read(reference: ImageReference) -> bytes:
        location = parse_gridfs_uri(reference.uri)
        if (location.database, location.bucket) != (TARGET.database, TARGET.bucket):
            raise ClaimCheckError(f"{reference.uri} is outside the configured database and bucket")
        data = files.get((location.database, location.bucket, location.file_id))
        if data is None:
            raise ClaimCheckError(f"{reference.uri} does not exist")
        if len(data) != reference.size_bytes or hashlib.sha256(data).hexdigest() != reference.sha256:
            raise ClaimCheckError(f"{reference.uri} fails its checks")
        return data

    return read


def _decoder() -> FrameDecoder:
    spec = PreprocessSpec.for_input(MODEL_INPUT, MODEL_INPUT)
    return FrameDecoder(
        lambda image: preprocess_batch([image], spec)[0],
        ImageSpec(width=MODEL_INPUT, height=MODEL_INPUT),
        max_image_pixels=LIMITS.max_image_pixels,
        max_image_bytes=LIMITS.max_image_bytes,
        claim_check=_in_memory_claim_check({(TARGET.database, TARGET.bucket, TARGET.sha256): TARGET.data}),
    )


DECODER = _decoder()
TICKET = Ticket("frames", 0, 0, 1)


def _verdict(case: BadCase) -> str:
    """The reason the decoder gives, or what went wrong instead."""
    try:
        DECODER.decode(case.value, TICKET)
    except FrameRejected as rejection:
        return rejection.reason.value
    except Exception as exc:  # the live worker would dead-letter this as OTHER: a wrong reason
        return f"raised {type(exc).__name__}: {exc}"
    return "accepted as a valid frame"


@pytest.fixture(scope="module")
def corpus() -> BadInputCorpus:
    return BadInputCorpus(seed=2026, limits=LIMITS, target=TARGET)


def test_every_kind_of_case_is_dead_lettered_with_its_expected_reason(corpus: BadInputCorpus) -> None:
    wrong: Counter[tuple[str, str, str]] = Counter()
    for case in corpus.cases(len(MUTATIONS) * 40):
        verdict = _verdict(case)
        if verdict != case.expected.value:
            wrong[(case.kind, case.expected.value, verdict[:120])] += 1
    assert not wrong, "\n".join(
        f"{n} x {kind}: expected {exp}, got {got}" for (kind, exp, got), n in wrong.items()
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 10**9))
def test_any_seed_and_case_gets_its_expected_reason(seed: int, index: int) -> None:
    case = BadInputCorpus(seed=seed, limits=LIMITS, target=TARGET).case(index)
    assert _verdict(case) == case.expected.value, (case.kind, case.index)


def test_the_corpus_is_deterministic_and_covers_every_kind(corpus: BadInputCorpus) -> None:
    again = BadInputCorpus(seed=2026, limits=LIMITS, target=TARGET)
    first = list(corpus.cases(len(MUTATIONS) * 2))
    assert first == list(again.cases(len(MUTATIONS) * 2))
    assert {case.kind for case in first} == set(MUTATIONS)
    other = BadInputCorpus(seed=2027, limits=LIMITS, target=TARGET)
    assert [c.value for c in other.cases(20)] != [c.value for c in first[:20]]


def test_hostile_headers_and_keys_are_mixed_in(corpus: BadInputCorpus) -> None:
    cases = list(corpus.cases(2000))
    hostile = [c for c in cases if any(len(v) > 4096 or not _is_utf8(v) for _, v in c.headers)]
    assert len(hostile) > 50
    assert any(c.key is None for c in cases) and any(c.key == b"" for c in cases)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True
