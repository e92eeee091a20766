"""Typed records mirroring the shipped Avro schemas (``schemas/avro/*.avsc``), namespace ``dev.lineguard.v1``.

One module per record (:mod:`schemas.frame`, :mod:`schemas.result`, :mod:`schemas.events`,
:mod:`schemas.deadletter`, :mod:`schemas.parts`), the enums in :mod:`schemas.vocabulary`, the field checks in
:mod:`schemas.fields`; this module gathers them under the one name callers import.
``tests/unit/test_schemas_contract.py`` checks every record field by field against its ``.avsc``.

Conventions, the same for every record:

* frozen, slotted, keyword-only dataclasses; Avro arrays are tuples, Avro maps are read-only ``Mapping``\\ s;
* Avro enums are :class:`enum.StrEnum` whose member names are the Avro symbols
  (:mod:`schemas.vocabulary`);
* ``timestamp-micros`` fields are timezone-aware UTC :class:`datetime` (an aware datetime in another zone is
  converted to UTC; a naive one is refused, because its instant is unknown);
* ``to_dict()`` returns the dict fastavro (and confluent's ``AvroSerializer``) writes, ``from_dict()``
  builds the record from the dict a reader returns; fields with an Avro default may be missing from it.

Invariants that no valid record can break (box corners in [0, 1] with min <= max, positive image size, 1 or
3 channels, scores in [0, 1], ...) are checked on construction and raise :class:`InvalidRecordError`, which is
both a ``ValueError`` (a caller building a record made a mistake) and a :class:`SerializationError` (bytes
that decode to such a record are poison data). The checks are a few comparisons: frames are built thousands
of times a second.
Whether an image actually decodes, or matches its declared size, is the worker's job, not the record's.
"""

from __future__ import annotations

from schemas.deadletter import DeadLetter, DeadLetterSource, Header
from schemas.events import DefectEvent, DefectRegion
from schemas.fields import InvalidRecordError
from schemas.frame import Box, Frame, GroundTruth, ImageReference
from schemas.result import ClassScore, Detection, InspectionResult, KafkaCoordinates, ModelInfo
from schemas.vocabulary import MODEL_TASKS, DeadLetterReason, ImageEncoding, Task, Verdict

__all__ = [
    "MODEL_TASKS",
    "TOP_LEVEL_RECORDS",
    "Box",
    "ClassScore",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetterSource",
    "DefectEvent",
    "DefectRegion",
    "Detection",
    "Frame",
    "GroundTruth",
    "Header",
    "ImageEncoding",
    "ImageReference",
    "InspectionResult",
    "InvalidRecordError",
    "KafkaCoordinates",
    "ModelInfo",
    "Task",
    "Verdict",
]

#: The records that travel as Kafka values, each with a shipped top-level schema.
TOP_LEVEL_RECORDS: tuple[type, ...] = (Frame, InspectionResult, DefectEvent, DeadLetter)
