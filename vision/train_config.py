"""The settings of one training run (recorded in the artifact's training summary)."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.calibration import DEFAULT_FALSE_REJECT_BUDGET
from vision.datasets.augment import AugmentConfig
from vision.preprocess import PreprocessSpec

# ~100 steps of memory: a few epochs of the small real sets trained here (15-20 steps per epoch).
DEFAULT_EMA_MOMENTUM: dict[Task, float] = {Task.DETECTION: 0.99}
# Detection's mixing defaults (vision.box_mixing, vision.balanced_sampling): off until a measured run says so.
DEFAULT_MOSAIC: dict[Task, float] = {}
DEFAULT_COPY_PASTE: dict[Task, int] = {}
DEFAULT_BALANCE: dict[Task, float] = {}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in the artifact's training summary)."""

    task: Task
    input_width: int = 160
    input_height: int = 160
    channels: int = 3
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    validation_fraction: float = 0.15
    patience: int = 5
    augment: bool = True
    width: float = 1.0
    max_minutes: float | None = None
    name: str | None = None
    version: str | None = None
    keep_checkpoints: bool = False
    progress: bool = True
    command: str = ""
    augment_config: AugmentConfig = field(default_factory=AugmentConfig)
    # Anomaly: "simulated" (good images + painted-in defects) or "autoencoder" (reconstruction error).
    anomaly_method: str = "simulated"
    # Anomaly: share of good images the good-only threshold may reject.
    false_reject_budget: float = DEFAULT_FALSE_REJECT_BUDGET
    # Start from another artifact's weights where layer names and shapes match (e.g. a segmenter from the
    # simulated-defect anomaly model: same U-Net body, another head).
    init_from: str | None = None
    # Detection: "centernet" (stride 4) or "fcos" (strides 8/16/32; vision.nets.detection_training).
    detector_head: str = "centernet"
    # Train on random crops of this size (width, height) of the prepared input; serve the whole input with
    # the same weights (vision.crops). None: train on the whole input.
    crop: tuple[int, int] | None = None
    # Momentum of the weights' moving average that is validated and served (vision.fit_setup); 0 = off,
    # None = the task's default (see ema_momentum).
    ema: float | None = None
    # Detection only, None = the task's default: share of examples built as a 4-image mosaic, instances of
    # other images pasted per example (copy-paste; vision.box_mixing), and the class-balanced sampling
    # strength in [0, 1] (0: as the data is; 1: classes drawn alike; vision.balanced_sampling).
    mosaic: float | None = None
    copy_paste: int | None = None
    balance: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ConfigurationError(f"EMA momentum must be in [0, 1), got {self.ema_momentum}")
        if not (
            0.0 <= self.mosaic_share <= 1.0 and 0.0 <= self.balance_strength <= 1.0 and self.paste_count >= 0
        ):
            raise ConfigurationError("mosaic and balance must be in [0, 1], copy-paste at least 0")
        if self.crop is not None:
            crop_w, crop_h = self.crop
            if crop_w > self.input_width or crop_h > self.input_height:
                raise ConfigurationError(
                    f"crop {crop_w}x{crop_h} is larger than the input {self.input_width}x{self.input_height}"
                )
            if self.crop == (self.input_width, self.input_height):
                object.__setattr__(self, "crop", None)

    @property
    def ema_momentum(self) -> float:
        """The EMA momentum this run uses: ``ema``, else the task's default (on for detection, whose short
        high-rate runs gain most from averaged weights; off elsewhere until measured there)."""
        return self.ema if self.ema is not None else DEFAULT_EMA_MOMENTUM.get(self.task, 0.0)

    @property
    def mosaic_share(self) -> float:
        return self.mosaic if self.mosaic is not None else DEFAULT_MOSAIC.get(self.task, 0.0)

    @property
    def paste_count(self) -> int:
        return self.copy_paste if self.copy_paste is not None else DEFAULT_COPY_PASTE.get(self.task, 0)

    @property
    def balance_strength(self) -> float:
        return self.balance if self.balance is not None else DEFAULT_BALANCE.get(self.task, 0.0)

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec.for_input(self.input_width, self.input_height, self.channels)

    def training_spec(self) -> PreprocessSpec:
        """The shape the trained network sees: the crop where there is one, else the whole input."""
        if self.crop is None:
            return self.preprocess_spec()
        return PreprocessSpec.for_input(self.crop[0], self.crop[1], self.channels)
