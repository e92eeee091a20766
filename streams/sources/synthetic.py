"""``synthetic``: procedural inspection frames with known defects, from ``vision.synthetic``.

Frame ``i`` of a source with seed ``s`` is the generator's frame ``(s, i)``, so an evaluator that knows the
seed can regenerate any frame. The ground truth travels with the frame.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import numpy as np

from streams.sources.base import CapturedFrame, FrameGroundTruth, SourceStats
from vision.samples import BoxLabel
from vision.synthetic_kinds import DEFAULT_DEFECT_CLASSES


class SyntheticSource:
    """An endless stream of generated frames (the runner's ``--count`` ends it)."""

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        defect_rate: float = 0.3,
        seed: int = 0,
        surface: str = "metal",
        first_index: int = 0,
        classes: Sequence[str] = DEFAULT_DEFECT_CLASSES,
    ) -> None:
        from vision.synthetic import SyntheticDefectGenerator  # OpenCV only for synthetic sources

        self.generator = SyntheticDefectGenerator(
            width=width,
            height=height,
            defect_rate=defect_rate,
            seed=seed,
            surface=surface,  # type: ignore[arg-type]
            classes=classes,
        )
        self.name = f"synthetic:seed={seed},defect_rate={defect_rate},size={width}x{height},surface={surface}"
        if tuple(classes) != DEFAULT_DEFECT_CLASSES:
            self.name += f",defects={'+'.join(classes)}"
        self.stats = SourceStats()
        self._next_index = first_index
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[CapturedFrame]:
        while not self._closed.is_set():
            index = self._next_index
            self._next_index += 1
            sample = self.generator.generate(index)
            assert sample.image is not None  # generate() always renders pixels
            self.stats.frames += 1
            yield CapturedFrame(
                captured_at=datetime.now(UTC),
                image=sample.image,
                ground_truth=self._ground_truth(sample.label, sample.boxes, sample.mask),
                origin=f"synthetic#{index}",
            )

    def _ground_truth(self, label: str, boxes: tuple[BoxLabel, ...], mask: np.ndarray) -> FrameGroundTruth:
        from vision.synthetic import GOOD_LABEL  # OpenCV only for synthetic sources

        if label == GOOD_LABEL:
            return FrameGroundTruth(labels=(), boxes=(), mask=None)
        # The generator numbers mask classes by its whole class list; the Frame contract numbers them by the
        # frame's own `labels` (k = k-th label, from 1), so remap.
        labels = (label,)
        generator_id = self.generator.classes.index(label) + 1
        remapped = np.where(mask == generator_id, 1, 0).astype(np.uint8)
        return FrameGroundTruth(labels=labels, boxes=boxes, mask=remapped)

    def close(self) -> None:
        self._closed.set()
