"""The enums of the contract (``dev.lineguard.v1``), one vocabulary for the whole tree.

Every enum is a :class:`enum.StrEnum` whose member *names* are the Avro symbols, in the ``.avsc`` order.
For all but :class:`Task` the value is the symbol too. :class:`Task` is also the vocabulary of models,
datasets and the CLIs, which spell a task by its short name (``classify``, in ``model.json``, dataset
manifests, ``--task``): that short name is its value, and the Avro symbol its name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class ImageEncoding(StrEnum):
    """How a frame's ``image`` bytes are encoded (Avro enum ``ImageEncoding``)."""

    UNKNOWN = "UNKNOWN"
    JPEG = "JPEG"
    PNG = "PNG"


class Task(StrEnum):
    """Vision task of a model (Avro enum ``Task``: the member name is the symbol on the wire).

    The value is the short name models, datasets and CLIs use: ``Task("classify")`` and the Avro symbol
    ``Task("CLASSIFICATION")`` (any case) both give :attr:`CLASSIFICATION`. ``UNKNOWN`` exists for records
    written by a newer schema (the Avro enum's default); no model has it, see :data:`MODEL_TASKS`.
    """

    UNKNOWN = "unknown"
    CLASSIFICATION = "classify"
    DETECTION = "detect"
    SEGMENTATION = "segment"
    ANOMALY = "anomaly"

    @property
    def symbol(self) -> str:
        """The Avro symbol written for this task (``CLASSIFICATION``)."""
        return self.name

    @classmethod
    def _missing_(cls, value: object) -> Task | None:
        # Readers return the Avro symbol; hand-written input may spell it in any case.
        if isinstance(value, str):
            return cls.__members__.get(value.upper())
        return None


#: The tasks a model can have (every task but ``UNKNOWN``), in the order the CLIs list them.
MODEL_TASKS: tuple[Task, ...] = (Task.CLASSIFICATION, Task.DETECTION, Task.SEGMENTATION, Task.ANOMALY)
#: Their short names as a type, for CLI options (a ``Task`` option would offer ``unknown`` too); the same
#: names in the same order (test_schemas_contract checks it).
ModelTaskName = Literal["classify", "detect", "segment", "anomaly"]


class Verdict(StrEnum):
    """Outcome of inspecting one frame (Avro enum ``Verdict``)."""

    UNKNOWN = "UNKNOWN"
    OK = "OK"
    DEFECT = "DEFECT"
    UNCERTAIN = "UNCERTAIN"


class DeadLetterReason(StrEnum):
    """Why a worker rejected an input (Avro enum ``DeadLetterReason``)."""

    OTHER = "OTHER"
    UNDECODABLE_RECORD = "UNDECODABLE_RECORD"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    EMPTY_IMAGE = "EMPTY_IMAGE"
    WRONG_DIMENSIONS = "WRONG_DIMENSIONS"
    OVERSIZE = "OVERSIZE"
    CLAIM_CHECK_FAILED = "CLAIM_CHECK_FAILED"
