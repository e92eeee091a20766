"""The callbacks of one training run: the planned schedule, NaN guard, best checkpoint,
early stopping and (optionally) EMA weights.

EMA ("Polyak averaging", as YOLO-family detectors train): a moving average of the weights is kept beside
them, and the average is what gets validated, checkpointed, kept as the best epoch and served. The raw
weights of a short, high-rate run jump from batch to batch; their average generalizes better and makes the
epoch-to-epoch validation loss (and so early stopping) less noisy.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from vision.schedule import PlannedSchedule


def ema_decay(momentum: float, updates: int) -> float:
    """The average's decay after ``updates`` batches: ``momentum``, ramped up from 0 as (1 + n) / (10 + n)
    (TensorFlow's ``num_updates`` warm-up), so the first weights, which are mostly noise, fade quickly
    and a run of a few dozen steps still serves its late weights."""
    return min(momentum, (1.0 + updates) / (10.0 + updates))


class EmaWeights(keras.callbacks.Callback):
    """Keeps the moving average of the trainable weights after every batch. From the epoch's validation
    (``on_test_begin``) to the next epoch's start the model holds the average, so the validation loss, the
    checkpoint and early stopping (which come after this callback) all judge and keep the averaged weights;
    training steps always run on the raw ones.

    Keras' own ``use_ema`` has a fixed momentum with no warm-up, which a run of a few hundred steps
    cannot afford, so it is not used."""

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.updates = 0
        self._average: list[np.ndarray] = []
        self._raw: list[np.ndarray] | None = None  # the raw weights while the model holds the average

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._average = [np.array(w.numpy(), dtype=np.float64) for w in self.model.trainable_weights]
        self.updates = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        decay = ema_decay(self.momentum, self.updates)
        self.updates += 1
        for average, weight in zip(self._average, self.model.trainable_weights, strict=True):
            average *= decay
            average += (1.0 - decay) * weight.numpy()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._hold_average()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._hold_average()  # already done when the epoch was validated

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._raw is not None:
            for weight, raw in zip(self.model.trainable_weights, self._raw, strict=True):
                weight.assign(raw)
            self._raw = None

    def _hold_average(self) -> None:
        if self._raw is not None or not self._average:
            return
        self._raw = [w.numpy() for w in self.model.trainable_weights]
        for weight, average in zip(self.model.trainable_weights, self._average, strict=True):
            weight.assign(average.astype(weight.dtype))


def fit_callbacks(
    schedule: PlannedSchedule,
    checkpoint_dir: Path,
    patience: int,
    ema_momentum: float,
    epoch_metric: keras.callbacks.Callback | None = None,
    monitor: str = "val_loss",
) -> list[keras.callbacks.Callback]:
    """Callbacks in the order they must run: with EMA (``ema_momentum`` > 0) the averaged weights are put
    in at each epoch's end *before* the checkpoint and early stopping look at the model, so those keep
    (and restore) the averaged weights. ``epoch_metric`` (which writes ``monitor`` into the epoch's logs)
    runs after the EMA and before those two, which then keep the epoch with the highest ``monitor``;
    without it they keep the lowest validation loss."""
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN(), schedule]
    if ema_momentum > 0:
        callbacks.append(EmaWeights(ema_momentum))
    if epoch_metric is not None:
        callbacks.append(epoch_metric)
    mode = "min" if monitor == "val_loss" else "max"
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            str(checkpoint_dir / "best.weights.h5"),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=patience, restore_best_weights=True
        ),
    ]
    return callbacks
