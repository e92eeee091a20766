"""Avro serializers and deserializers for lineguard records, following confluent-kafka's contract.

Both classes are confluent-kafka ``Serializer`` / ``Deserializer`` subclasses (``__call__(value, ctx)``), so
they plug into a ``SerializingProducer`` or are called directly next to a plain ``Producer`` / ``Consumer``.

Wire format:

* no registry client: Avro single-object encoding (``C3 01`` + CRC-64-AVRO fingerprint + body), resolved
  against the schemas shipped in ``schemas/avro`` and any writer schema registered with
  :meth:`AvroRecordDeserializer.register_writer_schema`;
* with a ``confluent_kafka.schema_registry.SchemaRegistryClient``: Confluent framing (``00`` + schema id +
  body); the serializer registers (or looks up) the schema under its strategy's subject and caches the id.

The deserializer accepts both framings whatever it was built with, finds the writer's schema and reads the
body with Avro schema resolution into the reader's schema, so a newer reader reads older records and the other
way round. Errors: :class:`SerializationError` for bytes that are not a valid record,
:class:`UnknownSchemaError` when the writer schema (fingerprint or id) is not known,
:class:`ServiceUnavailableError` when the registry cannot be reached.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar, overload

from confluent_kafka.serialization import Deserializer, SerializationContext, Serializer
from fastavro import schemaless_reader

from schemas.avro_writer import RecordBodyWriter
from schemas.catalog import CompiledSchema, compile_schema, previous_schemas, shipped_schema
from schemas.errors import SerializationError, ServiceUnavailableError, UnknownSchemaError
from schemas.framing import confluent_header, read_framing, single_object_header

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

logger = logging.getLogger(__name__)


class AvroRecord(Protocol):
    """What a lineguard record class offers the serde (every top-level class in :mod:`schemas.records`)."""

    avro_name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...


R = TypeVar("R", bound=AvroRecord)

#: ``(ctx, record full name) -> subject``, the signature of confluent-kafka's subject name strategies.
SubjectNameStrategy = Callable[[SerializationContext | None, str], str | None]


def topic_subject_name_strategy(ctx: SerializationContext | None, record_name: str) -> str:
    """Confluent's default subject: ``<topic>-value`` (or ``-key``)."""
    if ctx is None:
        raise SerializationError(
            "a SerializationContext (topic and field) is needed to name the registry subject; "
            "pass one, or choose a strategy that does not need it"
        )
    return f"{ctx.topic}-{ctx.field}"


def record_subject_name_strategy(ctx: SerializationContext | None, record_name: str) -> str:
    """Subject named after the record (``dev.lineguard.v1.Frame``): one subject for all topics carrying it."""
    return record_name


def schema_registry_client(
    url: str | None, basic_auth_user_info: str | None = None
) -> SchemaRegistryClient | None:
    """A registry client for ``url``, or None without one (the serde then uses single-object encoding).

    ``mock://<name>`` gives confluent-kafka's in-memory registry (tests, demos); ``basic_auth_user_info`` is
    ``user:password``.
    """
    if not url:
        return None
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf = {"url": url}
    if basic_auth_user_info:
        conf["basic.auth.user.info"] = basic_auth_user_info
    return SchemaRegistryClient.new_client(conf)


def _as_compiled(schema: CompiledSchema | Mapping[str, Any] | str) -> CompiledSchema:
    return schema if isinstance(schema, CompiledSchema) else compile_schema(schema)


def _schema_of(record_cls: type[AvroRecord]) -> CompiledSchema:
    avro_name = getattr(record_cls, "avro_name", None)
    if not isinstance(avro_name, str) or not hasattr(record_cls, "from_dict"):
        raise TypeError(f"{record_cls!r} is not a lineguard record class (it needs avro_name and from_dict)")
    return shipped_schema(avro_name)


class AvroRecordSerializer(Serializer, Generic[R]):
    """Serialize one record type to Avro: single-object encoding, or Confluent framing with a registry.

    ``auto_register=False`` looks the schema up instead of registering it (for registries where producers may
    not register). The registry schema id is cached per subject, so the registry is asked once per subject.
    """

    def __init__(
        self,
        record_cls: type[R],
        schema_registry_client: SchemaRegistryClient | None = None,
        *,
        auto_register: bool = True,
        subject_name_strategy: SubjectNameStrategy = topic_subject_name_strategy,
    ) -> None:
        self._record_cls = record_cls
        self._schema = _schema_of(record_cls)
        self._writer = RecordBodyWriter(self._schema)
        self._registry = schema_registry_client
        self._auto_register = auto_register
        self._subject_name_strategy = subject_name_strategy
        self._single_object_header = single_object_header(self._schema.fingerprint)
        self._header_by_subject: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def schema(self) -> CompiledSchema:
        """The writer schema."""
        return self._schema

    @overload
    def __call__(self, obj: R, ctx: SerializationContext | None = None) -> bytes: ...

    @overload
    def __call__(self, obj: None, ctx: SerializationContext | None = None) -> None: ...

    def __call__(self, obj: R | None, ctx: SerializationContext | None = None) -> bytes | None:
        if obj is None:  # a tombstone stays a tombstone, as with confluent's serializers
            return None
        if not isinstance(obj, self._record_cls):
            raise SerializationError(
                f"{type(self).__name__} for {self._record_cls.__name__} cannot serialize {type(obj).__name__}"
            )
        header = self._single_object_header if self._registry is None else self._registry_header(ctx)
        try:
            return self._writer.encode(header, obj.to_dict())
        except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError... for bad values
            raise SerializationError(f"cannot encode {self._schema.name}: {exc}") from exc

    def _registry_header(self, ctx: SerializationContext | None) -> bytes:
        subject = self._subject_name_strategy(ctx, self._schema.full_name)
        if subject is None:
            raise SerializationError(
                f"the subject name strategy named no subject for {self._schema.full_name}"
            )
        header = self._header_by_subject.get(subject)
        if header is None:
            with self._lock:
                header = self._header_by_subject.get(subject)
                if header is None:
                    header = confluent_header(self._schema_id(subject))
                    self._header_by_subject[subject] = header
        return header

    def _schema_id(self, subject: str) -> int:
        from confluent_kafka.schema_registry import Schema

        assert self._registry is not None
        schema = Schema(self._schema.schema_str, "AVRO")
        schema_id: int | None
        with _registry_errors(f"subject {subject!r}"):
            if self._auto_register:
                schema_id = self._registry.register_schema(subject, schema)
            else:
                schema_id = self._registry.lookup_schema(subject, schema).schema_id
        if schema_id is None:
            raise UnknownSchemaError(f"the registry returned no schema id for subject {subject!r}")
        logger.info(
            "schema %s has registry id %d under subject %s", self._schema.full_name, schema_id, subject
        )
        return int(schema_id)


@dataclass(frozen=True, slots=True)
class _WriterEntry:
    """A known writer schema and the reader schema to resolve into (None when writer == reader)."""

    writer: CompiledSchema
    resolve_into: Any


class AvroRecordDeserializer(Deserializer, Generic[R]):
    """Deserialize Avro bytes in either framing into one record type, resolving writer -> reader schema.

    ``reader_schema`` defaults to the shipped schema of ``record_cls``. The known single-object writer schemas
    start as the reader schema and the shipped one; add older or newer versions with
    :meth:`register_writer_schema`.
    """

    def __init__(
        self,
        record_cls: type[R],
        schema_registry_client: SchemaRegistryClient | None = None,
        reader_schema: CompiledSchema | Mapping[str, Any] | str | None = None,
    ) -> None:
        self._record_cls = record_cls
        shipped = _schema_of(record_cls)
        self._reader = shipped if reader_schema is None else _as_compiled(reader_schema)
        self._registry = schema_registry_client
        self._by_fingerprint: dict[bytes, _WriterEntry] = {}
        self._by_schema_id: dict[int, _WriterEntry] = {}
        self._lock = threading.Lock()
        self.register_writer_schema(self._reader)
        self.register_writer_schema(shipped)
        for earlier in previous_schemas(shipped.full_name):  # bytes written before the last schema change
            self.register_writer_schema(earlier)

    @property
    def reader_schema(self) -> CompiledSchema:
        """The schema records are resolved into."""
        return self._reader

    def register_writer_schema(self, schema: CompiledSchema | Mapping[str, Any] | str) -> CompiledSchema:
        """Make a writer schema known by its fingerprint, e.g. an older or newer version of the record."""
        compiled = _as_compiled(schema)
        self._by_fingerprint[compiled.fingerprint] = self._entry(compiled)
        return compiled

    def _entry(self, writer: CompiledSchema) -> _WriterEntry:
        same = writer.canonical_form == self._reader.canonical_form
        return _WriterEntry(writer=writer, resolve_into=None if same else self._reader.parsed)

    @overload
    def __call__(self, value: bytes, ctx: SerializationContext | None = None) -> R: ...

    @overload
    def __call__(self, value: None, ctx: SerializationContext | None = None) -> None: ...

    def __call__(self, value: bytes | None, ctx: SerializationContext | None = None) -> R | None:
        if value is None:
            return None
        datum = self.decode_dict(value)
        try:
            record: R = self._record_cls.from_dict(datum)
            return record
        except SerializationError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"decoded {self._reader.name} does not fit the record: {exc!r}") from exc

    def decode_dict(self, value: bytes) -> dict[str, Any]:
        """Decode to the Avro datum (a dict in the reader schema's shape) without building the record."""
        framing = read_framing(value)
        if framing.fingerprint is not None:
            entry = self._by_fingerprint.get(framing.fingerprint)
            if entry is None:
                raise UnknownSchemaError(
                    f"unknown writer schema fingerprint {framing.fingerprint.hex()} for {self._reader.name} "
                    f"(known: {', '.join(fp.hex() for fp in self._by_fingerprint)}); register the writer's "
                    "schema with register_writer_schema()"
                )
        else:
            assert framing.schema_id is not None
            entry = self._registry_entry(framing.schema_id)
        buffer = io.BytesIO(value)
        buffer.seek(framing.body_offset)
        try:
            datum = schemaless_reader(buffer, entry.writer.parsed, entry.resolve_into)
        except Exception as exc:  # corrupt input makes fastavro raise many built-in types: EOFError, ...
            raise SerializationError(
                f"cannot decode {entry.writer.name} body ({len(value)} bytes): {type(exc).__name__}: {exc}"
            ) from exc
        trailing = len(value) - buffer.tell()
        if trailing:
            raise SerializationError(
                f"{trailing} bytes left over after decoding {entry.writer.name}: not a single valid record"
            )
        if not isinstance(datum, dict):
            raise SerializationError(f"decoded {entry.writer.name} is not a record")
        return datum

    def _registry_entry(self, schema_id: int) -> _WriterEntry:
        entry = self._by_schema_id.get(schema_id)
        if entry is not None:
            return entry
        if self._registry is None:
            raise UnknownSchemaError(
                f"Confluent-framed record (schema id {schema_id}) but this deserializer has no registry"
            )
        with self._lock:
            entry = self._by_schema_id.get(schema_id)
            if entry is None:
                with _registry_errors(f"schema id {schema_id}"):
                    registered = self._registry.get_schema(schema_id)
                if registered.schema_type not in (None, "AVRO"):
                    raise UnknownSchemaError(f"schema id {schema_id} is {registered.schema_type}, not Avro")
                if registered.references:
                    raise UnknownSchemaError(
                        f"schema id {schema_id} uses schema references, which lineguard does not resolve; "
                        "register standalone schemas (lineguard's serializer does)"
                    )
                entry = self._entry(compile_schema(registered.schema_str or ""))
                self._by_schema_id[schema_id] = entry
        return entry


@contextmanager
def _registry_errors(what: str) -> Iterator[None]:
    """Translate registry client failures into lineguard errors: unknown schema vs. unreachable registry."""
    from confluent_kafka.schema_registry import SchemaRegistryError

    try:
        yield
    except SerializationError:
        raise
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            raise UnknownSchemaError(f"schema registry does not know {what}: {exc}") from exc
        if exc.http_status_code >= 500 or exc.http_status_code < 0:
            # The registry is failing, not the record: callers retry instead of dead-lettering.
            raise ServiceUnavailableError(f"schema registry failed for {what}: {exc}") from exc
        raise SerializationError(f"schema registry refused {what}: {exc}") from exc
    except Exception as exc:  # the HTTP client's connection and timeout errors, whatever its library
        raise ServiceUnavailableError(
            f"schema registry unreachable for {what}: {type(exc).__name__}: {exc}"
        ) from exc
