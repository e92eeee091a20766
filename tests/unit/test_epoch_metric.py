"""The per-epoch validation metric (vision.validation): which frames it looks at, when it applies, and that
the checkpoint and early stopping keep the epoch with the best of it rather than the lowest loss."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from schemas.vocabulary import Task
from vision.fit_setup import fit_callbacks
from vision.schedule import PlannedSchedule
from vision.training_data import Prepared
from vision.validation import EpochMetric, epoch_metric_name, epoch_metric_sample


def _prepared(labels: list[str], masks: bool = False) -> Prepared:
    count = len(labels)
    pixels = np.arange(count, dtype=np.uint8).reshape(count, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)
    return Prepared(
        pixels=pixels,
        labels=tuple(labels),
        boxes=tuple(() for _ in labels),
        masks=np.zeros((count, 2, 2), np.uint8) if masks else None,
    )


def test_the_sample_keeps_good_and_defect_frames_in_their_shares_and_their_order() -> None:
    labels = ["good"] * 7 + ["dent"] * 3  # frames 7, 8, 9 are the defects
    data = _prepared(labels, masks=True)

    sample = epoch_metric_sample(data, limit=4, seed=3)

    # round(4 * 3 / 10) = 1 defect frame and round(4 * 7 / 10) = 3 good ones.
    assert sorted(sample.labels) == ["dent", "good", "good", "good"]
    picked = [int(p) for p in sample.pixels[:, 0, 0, 0]]  # each frame's pixels hold its index
    assert picked == sorted(picked) and len(set(picked)) == 4
    assert [labels[i] for i in picked] == list(sample.labels)
    assert sample.masks is not None and len(sample.masks) == 4 and len(sample.boxes) == 4
    assert epoch_metric_sample(data, limit=4, seed=3).labels == sample.labels  # seeded
    assert epoch_metric_sample(data, limit=10) is data  # small sets are used whole


def test_a_metric_is_only_chosen_where_the_frames_can_give_it() -> None:
    good_only = _prepared(["good"] * 4)
    mixed = _prepared(["good", "good", "dent"], masks=True)
    assert epoch_metric_name(Task.ANOMALY, good_only) is None  # no AUROC without defects
    assert epoch_metric_name(Task.ANOMALY, mixed) == "val_image_auroc"
    assert epoch_metric_name(Task.DETECTION, good_only) == "val_map50"
    assert epoch_metric_name(Task.CLASSIFICATION, mixed) == "val_accuracy"
    assert epoch_metric_name(Task.SEGMENTATION, good_only) is None  # no masks
    assert epoch_metric_name(Task.SEGMENTATION, mixed) == "val_defect_iou"
    assert epoch_metric_name(Task.DETECTION, _prepared([])) is None


class WeightAtEpochEnd(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.weights: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.weights.append(float(self.model.trainable_weights[0].numpy().ravel()[0]))


@pytest.mark.parametrize("ema_momentum", [0.0, 0.5])
def test_the_run_keeps_the_epoch_with_the_best_metric_not_the_lowest_loss(
    tmp_path: Path, ema_momentum: float
) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    x = np.ones((10, 1), np.float32)
    y = np.full((10, 1), 3.0, np.float32)  # the loss falls every epoch: val_loss would keep the last one
    scripted = iter([0.2, 0.9, 0.1, 0.3, 0.4, 0.5])
    ends = WeightAtEpochEnd()
    metric = EpochMetric("val_score", lambda: next(scripted))
    callbacks = [
        *fit_callbacks(PlannedSchedule(0.1, 30, None), tmp_path, 3, ema_momentum, metric, "val_score"),
        ends,
    ]
    history = model.fit(
        x, y, batch_size=2, epochs=6, shuffle=False, validation_data=(x, y), callbacks=callbacks, verbose=0
    )

    # Patience 3 after the best (epoch 2): epochs 3, 4 and 5 do not beat 0.9, so the run stops after 5.
    assert history.history["val_score"] == pytest.approx([0.2, 0.9, 0.1, 0.3, 0.4])
    assert history.history["val_loss"] == sorted(history.history["val_loss"], reverse=True)
    kept = float(model.trainable_weights[0].numpy().ravel()[0])
    assert kept == pytest.approx(ends.weights[1], abs=1e-6)  # the weights of the epoch that scored 0.9
    assert kept != pytest.approx(ends.weights[-1], abs=1e-3)
    assert (tmp_path / "best.weights.h5").is_file()
