"""The audit after a fault run (pure): what was expected against what the outputs hold.

* every frame has exactly one MongoDB document (``duplicate_documents`` counts extras);
* the results topic, read with ``read_committed``, holds at least one result per frame; ``duplicate_results``
  counts the extras (0 is the goal with exactly-once; at-least-once may repeat what a killed worker had
  written but not committed);
* dead letters hold only the records injected as bad, and every one of them, once under exactly-once
  (``duplicate_dead_letters`` counts the extras);
* ``lost`` counts frames with no result or no document.

Every duplicate figure is counted over the raw reads, before anything is collapsed into a set: a result, a
dead letter or a document that appears twice is counted twice. Documents are counted per frame (camera,
frame number), not per ``_id``: the sink's ``_id`` is derived from camera, frame and model version, so a
count per ``_id`` could never be above one, whereas a second document for a frame (another version, another
key scheme) shows here. Overwrites of the same ``_id`` (an at-least-once replay upserting) are by design
invisible to MongoDB and visible on the results topic instead.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

Identity = tuple[str, int]  # (camera id, frame number)
Coordinates = tuple[int, int]  # (partition, offset) on the frames topic


@dataclass(frozen=True, slots=True)
class AuditFigures:
    frames: int
    lost: int
    missing_results: int
    missing_documents: int
    duplicate_documents: int
    duplicate_results: int
    duplicate_dead_letters: int  # the same source record dead-lettered more than once
    frames_with_duplicate_results: int
    unexpected_results: int  # results for frames nobody produced
    spurious_dead_letters: int  # dead letters of records that were not injected as bad
    missing_dead_letters: int  # injected bad records without a dead letter


def audit(
    expected: Iterable[Identity],
    documents: Iterable[tuple[str, int, str]],
    results: Iterable[Identity],
    dead_letter_sources: Iterable[Coordinates],
    injected_bad: Iterable[Coordinates],
) -> AuditFigures:
    wanted = set(expected)
    per_document = Counter((camera, frame) for camera, frame, _version in documents)
    documented = set(per_document)
    per_result = Counter(results)
    resulted = set(per_result)
    per_letter = Counter(dead_letter_sources)
    letters = set(per_letter)
    bad = set(injected_bad)
    return AuditFigures(
        frames=len(wanted),
        lost=len(wanted - (resulted & documented)),
        missing_results=len(wanted - resulted),
        missing_documents=len(wanted - documented),
        duplicate_documents=sum(count - 1 for count in per_document.values()),
        duplicate_results=sum(count - 1 for count in per_result.values()),
        duplicate_dead_letters=sum(count - 1 for count in per_letter.values()),
        frames_with_duplicate_results=sum(1 for count in per_result.values() if count > 1),
        unexpected_results=len(resulted - wanted),
        spurious_dead_letters=len(letters - bad),
        missing_dead_letters=len(bad - letters),
    )


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
