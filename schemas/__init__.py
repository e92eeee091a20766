"""lineguard's wire contract: Avro schemas, typed records, serializers, topic and header names, errors.

Both sides import this package; it holds no Kafka client and no model.
"""

from schemas.catalog import CompiledSchema, compile_schema, shipped_schema, shipped_schemas
from schemas.errors import (
    ConfigurationError,
    FrameTooLargeError,
    LineguardError,
    SerializationError,
    ServiceUnavailableError,
    UnknownSchemaError,
)
from schemas.records import (
    Box,
    ClassScore,
    DeadLetter,
    DeadLetterReason,
    DeadLetterSource,
    DefectEvent,
    DefectRegion,
    Detection,
    Frame,
    GroundTruth,
    Header,
    ImageEncoding,
    ImageReference,
    InspectionResult,
    InvalidRecordError,
    KafkaCoordinates,
    ModelInfo,
    Task,
    Verdict,
)
from schemas.serde import (
    AvroRecordDeserializer,
    AvroRecordSerializer,
    record_subject_name_strategy,
    schema_registry_client,
    topic_subject_name_strategy,
)

__all__ = [
    "AvroRecordDeserializer",
    "AvroRecordSerializer",
    "Box",
    "ClassScore",
    "CompiledSchema",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetterSource",
    "DefectEvent",
    "DefectRegion",
    "Detection",
    "Frame",
    "FrameTooLargeError",
    "GroundTruth",
    "Header",
    "ImageEncoding",
    "ImageReference",
    "InspectionResult",
    "InvalidRecordError",
    "KafkaCoordinates",
    "LineguardError",
    "ModelInfo",
    "SerializationError",
    "ServiceUnavailableError",
    "Task",
    "UnknownSchemaError",
    "Verdict",
    "compile_schema",
    "record_subject_name_strategy",
    "schema_registry_client",
    "shipped_schema",
    "shipped_schemas",
    "topic_subject_name_strategy",
]
