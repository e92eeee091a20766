"""The contract every inference backend meets."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class InferenceBackend(Protocol):
    """Runs one model: preprocessed NHWC float32 batch in, the model's single raw output tensor out."""

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def warm_up(self, input_shape: tuple[int, int, int], batch_size: int) -> None:
        """Run the model once so the first real batch does not pay for graph building or allocation."""
        ...
