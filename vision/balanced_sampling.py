"""Class-balanced sampling for detection: which image, and which instance in it, each training example is
built around.

Drawing images uniformly shows each class as often as it occurs, so a rare defect type is learnt from a few
examples while the common ones dominate the loss. Here an example is drawn in two stages: a class, with a
probability that moves from the classes' instance shares (``strength`` 0) to uniform over the classes
that occur (``strength`` 1), then one instance of that class uniformly; the example is cropped so that it
holds that instance (:func:`vision.crops.origin_containing`). Box-free images (good parts) keep their share
of the examples, drawn uniformly among themselves, so the detector still sees as many clean surfaces as the
data has.

Pure NumPy, seeded by the caller's generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.samples import BoxLabel


def class_probabilities(counts: Sequence[int] | np.ndarray, strength: float) -> np.ndarray:
    """Per-class drawing probabilities from instance ``counts``: ``count ** (1 - strength)``, normalized over
    the classes that occur (a class with no instance is never drawn). ``strength`` 0: the instance shares;
    1: uniform."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"balance strength must be in [0, 1], got {strength}")
    n = np.asarray(counts, np.float64)
    weights = np.where(n > 0, np.power(np.maximum(n, 1.0), 1.0 - strength), 0.0)
    total = weights.sum()
    if total <= 0:
        raise ValueError("no class has an instance to draw")
    return weights / total


def instance_probabilities(labels: Sequence[str], classes: Sequence[str], strength: float) -> np.ndarray:
    """Probability of each instance (``labels``, one per instance) under the two-stage draw: its class's
    probability (:func:`class_probabilities`) shared equally by that class's instances. Instances of a class
    not in ``classes`` get 0."""
    index = {c: i for i, c in enumerate(classes)}
    ids = np.array([index.get(label, -1) for label in labels], np.int64)
    counts = np.bincount(ids[ids >= 0], minlength=len(classes))
    per_class = class_probabilities(counts, strength)
    return np.where(ids >= 0, per_class[np.maximum(ids, 0)] / np.maximum(counts[np.maximum(ids, 0)], 1), 0.0)


@dataclass(frozen=True)
class BalancedSampler:
    """Draws ``(image index, instance index in that image or None)`` for each training example."""

    image_of: np.ndarray  # (I,) image index of each known-class instance
    box_of: np.ndarray  # (I,) its index in the image's boxes
    probabilities: np.ndarray  # (I,) instance probabilities
    negatives: np.ndarray  # indices of images without a box of a known class
    negative_share: float  # share of examples drawn from them

    @classmethod
    def build(
        cls, image_boxes: Sequence[Sequence[BoxLabel]], classes: Sequence[str], strength: float = 1.0
    ) -> BalancedSampler:
        known = set(classes)
        image_of, box_of, labels = [], [], []
        for i, boxes in enumerate(image_boxes):
            for j, box in enumerate(boxes):
                if box.label in known:
                    image_of.append(i)
                    box_of.append(j)
                    labels.append(box.label)
        with_boxes = set(image_of)
        negatives = np.array([i for i in range(len(image_boxes)) if i not in with_boxes], np.int64)
        share = len(negatives) / max(1, len(image_boxes))
        if not labels:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), negatives, 1.0)
        return cls(
            np.array(image_of, np.int64),
            np.array(box_of, np.int64),
            instance_probabilities(labels, classes, strength),
            negatives,
            share,
        )

    def draw(self, rng: np.random.Generator) -> tuple[int, int | None]:
        if len(self.negatives) and (len(self.image_of) == 0 or rng.random() < self.negative_share):
            return int(self.negatives[rng.integers(len(self.negatives))]), None
        pick = int(rng.choice(len(self.image_of), p=self.probabilities))
        return int(self.image_of[pick]), int(self.box_of[pick])

    def class_shares(
        self, image_boxes: Sequence[Sequence[BoxLabel]], classes: Sequence[str]
    ) -> dict[str, float]:
        """Expected share of the instance-drawn examples that each class is drawn for (for the log)."""
        shares = dict.fromkeys(classes, 0.0)
        for i, j, p in zip(self.image_of, self.box_of, self.probabilities, strict=True):
            shares[image_boxes[i][j].label] += float(p)
        return shares
