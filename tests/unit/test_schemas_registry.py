"""Confluent Schema Registry framing, checked against confluent-kafka's own Avro serde on a mock registry."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.catalog import compile_schema, shipped_schema
from schemas.errors import SerializationError, ServiceUnavailableError, UnknownSchemaError
from schemas.framing import confluent_header
from schemas.records import Frame
from schemas.serde import (
    AvroRecordDeserializer,
    AvroRecordSerializer,
    record_subject_name_strategy,
    schema_registry_client,
)
from tests.unit.golden.records import GOLDEN_RECORDS, claim_check_frame, golden_frame

SAMPLES = [*(build() for build in GOLDEN_RECORDS.values()), claim_check_frame()]
CTX = SerializationContext("lineguard.test", MessageField.VALUE)


@pytest.fixture
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": "mock://lineguard-unit"})


@pytest.mark.parametrize("record", SAMPLES, ids=lambda record: type(record).__name__)
def test_ours_writes_confluent_reads(registry: SchemaRegistryClient, record: Any) -> None:
    data = AvroRecordSerializer(type(record), registry)(record, CTX)
    assert data is not None

    theirs = AvroDeserializer(registry)
    datum = theirs(data, CTX)

    assert data[0] == 0
    assert type(record).from_dict(datum) == record


@pytest.mark.parametrize("record", SAMPLES, ids=lambda record: type(record).__name__)
def test_confluent_writes_ours_reads(registry: SchemaRegistryClient, record: Any) -> None:
    schema_str = shipped_schema(type(record).avro_name).schema_str
    theirs = AvroSerializer(registry, schema_str, lambda obj, ctx: obj.to_dict())
    data = theirs(record, CTX)
    assert data is not None

    assert AvroRecordDeserializer(type(record), registry)(data, CTX) == record


def test_schema_is_registered_once_under_the_topic_value_subject(registry: SchemaRegistryClient) -> None:
    serializer = AvroRecordSerializer(Frame, registry)

    first = serializer(golden_frame(), CTX)
    second = serializer(golden_frame(), CTX)

    assert first == second
    assert registry.get_subjects() == ["lineguard.test-value"]
    registered = registry.get_latest_version("lineguard.test-value")
    assert registered.schema_id is not None and registered.schema.schema_str is not None
    assert first[:5] == confluent_header(registered.schema_id)
    assert compile_schema(registered.schema.schema_str).fingerprint == shipped_schema("Frame").fingerprint


def test_record_subject_strategy_needs_no_context(registry: SchemaRegistryClient) -> None:
    serializer = AvroRecordSerializer(Frame, registry, subject_name_strategy=record_subject_name_strategy)

    data = serializer(golden_frame())

    assert registry.get_subjects() == ["dev.lineguard.v1.Frame"]
    assert AvroRecordDeserializer(Frame, registry)(data) == golden_frame()


def test_topic_strategy_without_context_is_a_clear_error(registry: SchemaRegistryClient) -> None:
    with pytest.raises(SerializationError, match="SerializationContext"):
        AvroRecordSerializer(Frame, registry)(golden_frame())


def test_lookup_without_auto_register_needs_a_registered_schema(registry: SchemaRegistryClient) -> None:
    serializer = AvroRecordSerializer(Frame, registry, auto_register=False)
    with pytest.raises(UnknownSchemaError, match=r"lineguard\.test-value"):
        serializer(golden_frame(), CTX)

    frame_schema = Schema(shipped_schema("Frame").schema_str, "AVRO")
    schema_id = registry.register_schema("lineguard.test-value", frame_schema)

    data = serializer(golden_frame(), CTX)
    assert data is not None and data[:5] == confluent_header(schema_id)


def test_unknown_schema_id_is_an_unknown_schema(registry: SchemaRegistryClient) -> None:
    body = AvroRecordSerializer(Frame)(golden_frame())
    assert body is not None

    with pytest.raises(UnknownSchemaError, match="schema id 4242"):
        AvroRecordDeserializer(Frame, registry)(confluent_header(4242) + body[10:], CTX)


def test_one_registry_reader_also_reads_single_object_bytes(registry: SchemaRegistryClient) -> None:
    single_object = AvroRecordSerializer(Frame)(golden_frame())
    framed = AvroRecordSerializer(Frame, registry)(golden_frame(), CTX)
    reader = AvroRecordDeserializer(Frame, registry)

    assert reader(single_object, CTX) == reader(framed, CTX) == golden_frame()


def test_evolution_through_the_registry_in_both_directions(registry: SchemaRegistryClient) -> None:
    definition = copy.deepcopy(dict(shipped_schema("Frame").definition))
    definition["fields"].append({"name": "exposure_us", "type": ["null", "long"], "default": None})
    v2 = compile_schema(definition)
    v2_writer = AvroSerializer(
        registry, v2.schema_str, lambda frame, ctx: {**frame.to_dict(), "exposure_us": 9}
    )
    v2_bytes = v2_writer(golden_frame(), CTX)
    v1_bytes = AvroRecordSerializer(Frame, registry)(golden_frame(), CTX)
    assert v1_bytes is not None and v2_bytes is not None

    assert AvroRecordDeserializer(Frame, registry)(v2_bytes, CTX) == golden_frame()
    v2_reader = AvroRecordDeserializer(Frame, registry, reader_schema=v2)
    assert v2_reader.decode_dict(v1_bytes)["exposure_us"] is None
    assert v2_reader.decode_dict(v2_bytes)["exposure_us"] == 9


def test_unreachable_registry_is_service_unavailable() -> None:
    # Port 9 (discard) on localhost: nothing listens, the connection is refused at once.
    unreachable = SchemaRegistryClient({"url": "http://127.0.0.1:9", "max.retries": 0})

    with pytest.raises(ServiceUnavailableError, match="schema registry unreachable"):
        AvroRecordSerializer(Frame, unreachable)(golden_frame(), CTX)


def test_schema_registry_client_factory() -> None:

    assert schema_registry_client(None) is None
    assert schema_registry_client("") is None
    assert isinstance(schema_registry_client("mock://factory"), MockSchemaRegistryClient)
    real = schema_registry_client("http://registry.invalid:8081", "user:secret")
    assert isinstance(real, SchemaRegistryClient) and not isinstance(real, MockSchemaRegistryClient)


class _FailingRegistry(MockSchemaRegistryClient):
    """A registry answering every call with one HTTP error."""

    def __init__(self, status: int) -> None:
        super().__init__({"url": "mock://failing"})
        self._status = status

    def get_schema(self, *args: Any, **kwargs: Any) -> Any:
        raise SchemaRegistryError(self._status, 50001, "simulated")

    def register_schema(self, *args: Any, **kwargs: Any) -> Any:
        raise SchemaRegistryError(self._status, 42201, "simulated")


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, ServiceUnavailableError), (503, ServiceUnavailableError), (422, SerializationError)],
)
def test_registry_http_errors_map_to_retry_or_reject(status: int, error: type[Exception]) -> None:
    registry = _FailingRegistry(status)
    body = AvroRecordSerializer(Frame)(golden_frame())[10:]

    with pytest.raises(error, match="simulated"):
        AvroRecordSerializer(Frame, registry)(golden_frame(), CTX)
    with pytest.raises(error, match="simulated"):
        AvroRecordDeserializer(Frame, registry)(confluent_header(1) + body, CTX)
