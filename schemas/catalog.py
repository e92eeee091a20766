"""The Avro schemas lineguard ships, loaded once and compiled into standalone, fingerprinted form.

The ``.avsc`` files in ``schemas/avro/`` share named types across files (``DefectEvent`` uses ``Box`` from
``Frame`` and ``ModelInfo`` from ``InspectionResult``), so none but the first is a standalone schema. A schema
registry, the Apache Avro reference implementation and the single-object fingerprint all need a standalone
schema, so :func:`compile_schema` inlines every referenced named type at its first use. The result is what
lineguard writes, registers and fingerprints.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas.errors import SerializationError

NAMESPACE = "dev.lineguard.v1"

# Load order matters: a file may only use named types defined by the files before it.
SHIPPED_SCHEMA_FILES = (
    "Frame.avsc",
    "InspectionResult.avsc",
    "DefectEvent.avsc",
    "DeadLetter.avsc",
    "PartDecision.avsc",
)

# Earlier versions of a shipped schema, still on the topics (retention) while a new version rolls out: every
# reader knows their fingerprints, so bytes written before an upgrade stay readable (single-object encoding
# carries no schema, only its fingerprint). Keyed by record full name; files under ``avro/previous/``.
PREVIOUS_SCHEMA_FILES = {
    f"{NAMESPACE}.InspectionResult": ("InspectionResult.v1.avsc",),  # before deadline_missed
}

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """A standalone Avro schema with everything a reader or writer needs, computed once.

    ``definition`` is the JSON (docs kept: it is what gets registered), ``parsed`` the fastavro form used by
    ``schemaless_writer``/``schemaless_reader``, ``canonical_form`` the Parsing Canonical Form and
    ``fingerprint`` its CRC-64-AVRO fingerprint as the 8 little-endian bytes of a single-object header.
    """

    full_name: str
    definition: Mapping[str, Any]
    schema_str: str
    parsed: Any
    canonical_form: str
    fingerprint: bytes

    @property
    def name(self) -> str:
        """The record name without namespace, e.g. ``Frame``."""
        return self.full_name.rpartition(".")[2]


def compile_schema(
    definition: Mapping[str, Any] | str, named_types: Mapping[str, Mapping[str, Any]] | None = None
) -> CompiledSchema:
    """Compile a record schema (a JSON string or the parsed dict) into a standalone :class:`CompiledSchema`.

    Names the schema uses but does not define are looked up in ``named_types`` (full name -> definition),
    which defaults to the named types of the shipped schemas, so an evolved schema can refer to
    ``dev.lineguard.v1.Box`` without repeating it. Raises :class:`SerializationError` for an invalid schema.
    """
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as exc:
            raise SerializationError(f"Avro schema is not valid JSON: {exc}") from exc
    if not isinstance(definition, Mapping) or definition.get("type") not in ("record", "error"):
        raise SerializationError("an Avro record schema must be a JSON object with type 'record'")
    library = _shipped_named_types() if named_types is None else named_types
    standalone = _Expander(library).expand(copy.deepcopy(dict(definition)), namespace="")
    try:
        parsed = parse_schema(standalone)
        canonical = to_parsing_canonical_form(parsed)
    except Exception as exc:  # fastavro raises several built-in types for an invalid schema
        raise SerializationError(f"invalid Avro schema {definition.get('name')!r}: {exc}") from exc
    full_name = _full_name(standalone["name"], standalone.get("namespace", ""))
    return CompiledSchema(
        full_name=full_name,
        definition=standalone,
        schema_str=json.dumps(standalone, separators=(",", ":")),
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=crc64_avro_fingerprint(canonical),
    )


def crc64_avro_fingerprint(canonical_form: str) -> bytes:
    """The CRC-64-AVRO fingerprint of a Parsing Canonical Form, as the 8 bytes a single-object header carries.

    fastavro returns the fingerprint as hex of the little-endian bytes, which is the header's byte order.
    """
    return bytes.fromhex(fastavro_fingerprint(canonical_form, "CRC-64-AVRO"))


def shipped_schema(name: str) -> CompiledSchema:
    """The shipped schema of a record, by short (``Frame``) or full (``dev.lineguard.v1.Frame``) name."""
    full_name = name if "." in name else f"{NAMESPACE}.{name}"
    try:
        return shipped_schemas()[full_name]
    except KeyError:
        known = ", ".join(sorted(shipped_schemas()))
        raise SerializationError(f"no shipped Avro schema named {name!r} (shipped: {known})") from None


@functools.cache
def shipped_schemas() -> Mapping[str, CompiledSchema]:
    """Every shipped top-level schema, compiled, by full name. Loaded from package data on first use."""
    library = _shipped_named_types()
    compiled = {}
    for definition in _load_shipped_definitions():
        schema = compile_schema(definition, library)
        compiled[schema.full_name] = schema
    return compiled


@functools.cache
def previous_schemas(name: str) -> tuple[CompiledSchema, ...]:
    """The earlier versions of a shipped record schema (short or full name), oldest first; often none."""
    full_name = name if "." in name else f"{NAMESPACE}.{name}"
    folder = resources.files("schemas").joinpath("avro").joinpath("previous")
    library = _shipped_named_types()
    return tuple(
        compile_schema(json.loads(folder.joinpath(file_name).read_text(encoding="utf-8")), library)
        for file_name in PREVIOUS_SCHEMA_FILES.get(full_name, ())
    )


def _load_shipped_definitions() -> Iterator[dict[str, Any]]:
    folder = resources.files("schemas").joinpath("avro")
    for file_name in SHIPPED_SCHEMA_FILES:
        yield json.loads(folder.joinpath(file_name).read_text(encoding="utf-8"))


@functools.cache
def _shipped_named_types() -> Mapping[str, Mapping[str, Any]]:
    """Full name -> definition of every named type (records, enums) defined anywhere in the shipped files."""
    library: dict[str, dict[str, Any]] = {}
    for definition in _load_shipped_definitions():
        _collect_named_types(definition, "", library)
    return library


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _collect_named_types(node: Any, namespace: str, library: dict[str, dict[str, Any]]) -> None:
    """Record every named type under its full name; each copy is rewritten to carry its full name so it can be
    inlined anywhere (nested short names then resolve against the namespace of that full name)."""
    if isinstance(node, list):
        for branch in node:
            _collect_named_types(branch, namespace, library)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in _NAMED_KINDS:
        full_name = _full_name(node["name"], node.get("namespace", namespace))
        own_namespace = full_name.rpartition(".")[0]
        entry = {k: v for k, v in node.items() if k != "namespace"}
        entry["name"] = full_name
        library.setdefault(full_name, entry)
        for avro_field in node.get("fields", ()):
            _collect_named_types(avro_field["type"], own_namespace, library)
    elif kind == "array":
        _collect_named_types(node["items"], namespace, library)
    elif kind == "map":
        _collect_named_types(node["values"], namespace, library)
    elif isinstance(kind, dict | list):
        _collect_named_types(kind, namespace, library)


class _Expander:
    """Inlines each referenced named type at its first use, leaving later uses as names (Avro's rule)."""

    def __init__(self, library: Mapping[str, Mapping[str, Any]]) -> None:
        self._library = library
        self._defined: set[str] = set()

    def expand(self, node: Any, namespace: str) -> Any:
        if isinstance(node, str):
            return self._expand_reference(node, namespace)
        if isinstance(node, list):
            return [self.expand(branch, namespace) for branch in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind in _NAMED_KINDS:
            full_name = _full_name(node["name"], node.get("namespace", namespace))
            self._defined.add(full_name)
            own_namespace = full_name.rpartition(".")[0]
            for avro_field in node.get("fields", ()):
                avro_field["type"] = self.expand(avro_field["type"], own_namespace)
        elif kind == "array":
            node["items"] = self.expand(node["items"], namespace)
        elif kind == "map":
            node["values"] = self.expand(node["values"], namespace)
        elif isinstance(kind, dict | list):
            node["type"] = self.expand(kind, namespace)
        return node

    def _expand_reference(self, name: str, namespace: str) -> Any:
        if name in _PRIMITIVES:
            return name
        full_name = _full_name(name, namespace)
        if full_name in self._defined:
            return name
        definition = self._library.get(full_name)
        if definition is None:
            # Leave it: fastavro reports the unknown type with its own clear message.
            return name
        return self.expand(copy.deepcopy(dict(definition)), full_name.rpartition(".")[0])
