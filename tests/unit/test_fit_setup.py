"""EMA weights (vision.fit_setup): what a run keeps and serves is the moving average of its raw weights,
hand-computed from the weights the optimizer actually stepped through."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.fit_setup import ema_decay, fit_callbacks
from vision.schedule import PlannedSchedule
from vision.train_config import TrainConfig


class RawWeights(keras.callbacks.Callback):
    """Records the one weight after every batch (the model holds the raw weights during an epoch)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.seen.append(float(self.model.trainable_weights[0].numpy().ravel()[0]))


class ValidationLosses(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.losses.append(float((logs or {})["val_loss"]))


def fit_one_weight(tmp_path: Path, ema_momentum: float) -> tuple[float, list[float], list[float]]:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    x = np.ones((10, 1), np.float32)
    y = np.full((10, 1), 3.0, np.float32)
    raw = RawWeights()
    schedule = PlannedSchedule(0.1, 10, None)
    validation = ValidationLosses()
    callbacks = [raw, *fit_callbacks(schedule, tmp_path, patience=100, ema_momentum=ema_momentum), validation]
    model.fit(
        x, y, batch_size=2, epochs=2, shuffle=False, validation_data=(x, y), callbacks=callbacks, verbose=0
    )
    return float(model.trainable_weights[0].numpy().ravel()[0]), raw.seen, validation.losses


def test_with_ema_the_run_keeps_the_moving_average_of_its_raw_weights(tmp_path: Path) -> None:
    kept, raw, validated = fit_one_weight(tmp_path, ema_momentum=0.5)

    assert len(raw) == 10
    average = 0.0  # the initial weight
    at_epoch_end = []
    for n, weight in enumerate(raw):
        decay = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.18, 0.25, ... then 0.5 from the 9th batch
        average = decay * average + (1 - decay) * weight
        if n in (4, 9):
            at_epoch_end.append(average)
    assert kept == pytest.approx(average, abs=1e-6)
    # Each epoch is validated on the average, not on the raw weights: the loss is (w - 3)^2 of the average.
    assert validated == pytest.approx([(w - 3.0) ** 2 for w in at_epoch_end], rel=1e-4)
    assert validated[0] != pytest.approx((raw[4] - 3.0) ** 2, rel=1e-2)
    assert kept != pytest.approx(raw[-1], abs=1e-3)  # the weight rises towards 3, the average lags behind


def test_without_ema_the_run_keeps_its_last_raw_weights(tmp_path: Path) -> None:
    kept, raw, validated = fit_one_weight(tmp_path, ema_momentum=0.0)

    assert kept == pytest.approx(raw[-1], abs=1e-6)
    assert validated == pytest.approx([(raw[4] - 3.0) ** 2, (raw[9] - 3.0) ** 2], rel=1e-4)


def test_ema_is_on_by_default_for_detection_only_and_checked() -> None:
    assert TrainConfig(task=Task.DETECTION).ema_momentum == 0.99
    assert TrainConfig(task=Task.CLASSIFICATION).ema_momentum == 0.0
    assert TrainConfig(task=Task.DETECTION, ema=0.0).ema_momentum == 0.0
    assert TrainConfig(task=Task.SEGMENTATION, ema=0.9).ema_momentum == 0.9
    with pytest.raises(ConfigurationError, match="EMA momentum"):
        TrainConfig(task=Task.ANOMALY, ema=1.0)


def test_ema_decay_warms_up_to_the_momentum() -> None:
    assert ema_decay(0.99, 0) == pytest.approx(0.1)
    assert ema_decay(0.99, 90) == pytest.approx(0.91)
    assert ema_decay(0.99, 10_000) == 0.99
