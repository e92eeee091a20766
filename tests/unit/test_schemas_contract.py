"""The hand-written records and the shipped ``.avsc`` files say the same thing, field by field.

For every named type of every shipped schema there is one Python class (records: ``avro_name``; enums: the
class name), and for every record field its name, position, type, nullability and default match; every enum
has the Avro symbols, in order, as member names. ``to_dict()`` writes the fields in schema order. The checker
itself is tested on schemas changed on purpose, so a drift cannot pass unnoticed.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from types import NoneType, UnionType
from typing import Any

import pytest

from schemas import deadletter, events, frame, parts, result, vocabulary
from schemas.catalog import NAMESPACE, shipped_schemas
from tests.unit.golden.records import GOLDEN_RECORDS, claim_check_frame

RECORD_CLASSES: dict[str, type] = {
    str(vars(cls)["avro_name"]): cls
    for module in (frame, result, events, deadletter, parts)
    for cls in vars(module).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
}
ENUM_CLASSES: dict[str, type[StrEnum]] = {
    f"{NAMESPACE}.{cls.__name__}": cls
    for module in (vocabulary, parts)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, StrEnum) and cls is not StrEnum
}
_PRIMITIVES: dict[str, type] = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "bytes": bytes,
}


def _named_types(node: Any, found: dict[str, dict[str, Any]]) -> None:
    """Every record and enum defined in a standalone schema (inlined at first use), by full name."""
    if isinstance(node, list):
        for branch in node:
            _named_types(branch, found)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            found.setdefault(_full(node["name"]), node)
            for avro_field in node.get("fields", ()):
                _named_types(avro_field["type"], found)
        else:
            for key in ("type", "items", "values"):
                if isinstance(node.get(key), dict | list):
                    _named_types(node[key], found)


def _full(name: str) -> str:
    return name if "." in name else f"{NAMESPACE}.{name}"


def shipped_named_types() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for schema in shipped_schemas().values():
        _named_types(schema.definition, found)
    return found


def _class_of(full_name: str) -> type:
    found = RECORD_CLASSES.get(full_name) or ENUM_CLASSES.get(full_name)
    if found is None:
        raise LookupError(f"no Python class for Avro type {full_name}")
    return found


def expected_shape(avro_type: Any) -> object:
    """The Python type an Avro field type maps to, in the shape :func:`hint_shape` gives an annotation."""
    if isinstance(avro_type, str):
        return _PRIMITIVES.get(avro_type) or _class_of(_full(avro_type))
    if isinstance(avro_type, list):
        branches = [branch for branch in avro_type if branch != "null"]
        if len(branches) != 1:
            return ("union", tuple(expected_shape(branch) for branch in avro_type))
        inner = expected_shape(branches[0])
        return ("optional", inner) if len(avro_type) == 2 else inner
    kind = avro_type["type"]
    if avro_type.get("logicalType") == "timestamp-micros":
        return datetime
    if kind == "array":
        return ("sequence", expected_shape(avro_type["items"]))
    if kind == "map":
        return ("mapping", expected_shape(avro_type["values"]))
    if kind in ("record", "enum"):
        return _class_of(_full(avro_type["name"]))
    return expected_shape(kind)


def hint_shape(hint: Any) -> object:
    """A resolved annotation in the shape of :func:`expected_shape`: a class or ``(kind, shape)``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (UnionType, typing.Union):
        rest = [arg for arg in args if arg is not NoneType]
        if len(rest) == 1 and len(args) == 2:
            return ("optional", hint_shape(rest[0]))
        return ("union", tuple(hint_shape(arg) for arg in args))
    if origin is Sequence:
        return ("sequence", hint_shape(args[0]))
    if origin is Mapping:
        if args[0] is not str:
            return ("mapping with keys", args[0])
        return ("mapping", hint_shape(args[1]))
    return hint


def _python_default(spec: dataclasses.Field[Any]) -> object:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return dataclasses.MISSING


def _same_default(python: object, avro: object) -> bool:
    if isinstance(python, tuple):
        return list(python) == avro
    if isinstance(python, bytes):
        # Avro JSON writes a bytes default as a string of code points 0-255.
        return isinstance(avro, str) and python == avro.encode("latin-1")
    if isinstance(python, StrEnum):
        return python.name == avro
    return type(python) is type(avro) and python == avro


def record_differences(cls: type, definition: Mapping[str, Any]) -> list[str]:
    """Every way the record class and its Avro definition disagree; empty when they match."""
    name = cls.__name__
    fields = dataclasses.fields(cls)
    hints = typing.get_type_hints(cls)
    avro_fields = definition["fields"]
    problems = []
    python_names = [spec.name for spec in fields]
    avro_names = [avro_field["name"] for avro_field in avro_fields]
    if python_names != avro_names:
        problems.append(f"{name}: fields {python_names} but the schema has {avro_names}")
    by_name = {spec.name: spec for spec in fields}
    for avro_field in avro_fields:
        spec = by_name.get(avro_field["name"])
        if spec is None:
            continue
        where = f"{name}.{spec.name}"
        want, got = expected_shape(avro_field["type"]), hint_shape(hints[spec.name])
        if want != got:
            problems.append(f"{where}: annotated {got} but the schema says {want}")
        default = _python_default(spec)
        if "default" not in avro_field:
            if default is not dataclasses.MISSING:
                problems.append(f"{where}: Python default {default!r} but the schema has none")
        elif default is dataclasses.MISSING:
            problems.append(f"{where}: schema default {avro_field['default']!r} but no Python default")
        elif not _same_default(default, avro_field["default"]):
            problems.append(f"{where}: Python default {default!r}, schema default {avro_field['default']!r}")
    return problems


def enum_differences(cls: type[StrEnum], definition: Mapping[str, Any]) -> list[str]:
    names = [member.name for member in cls]
    if names != list(definition["symbols"]):
        return [f"{cls.__name__}: members {names} but the schema's symbols are {definition['symbols']}"]
    return []


def contract_differences(named_types: Mapping[str, Mapping[str, Any]]) -> list[str]:
    problems = []
    for full_name in sorted(set(named_types) - set(RECORD_CLASSES) - set(ENUM_CLASSES)):
        problems.append(f"{full_name}: in the schemas but no Python class")
    for full_name in sorted(set(RECORD_CLASSES) | set(ENUM_CLASSES)):
        definition = named_types.get(full_name)
        if definition is None:
            problems.append(f"{full_name}: a Python class but in no shipped schema")
        elif definition["type"] == "enum":
            problems.extend(enum_differences(ENUM_CLASSES[full_name], definition))
        else:
            try:
                problems.extend(record_differences(RECORD_CLASSES[full_name], definition))
            except LookupError as exc:
                problems.append(f"{full_name}: {exc}")
    return problems


def test_every_record_and_enum_matches_its_avro_schema_field_by_field() -> None:
    named = shipped_named_types()

    assert len(RECORD_CLASSES) == 16 and len(ENUM_CLASSES) == 6  # every class is compared, none skipped
    assert set(named) == set(RECORD_CLASSES) | set(ENUM_CLASSES)
    assert contract_differences(named) == []


def test_the_cli_task_names_are_the_model_tasks() -> None:
    assert typing.get_args(vocabulary.ModelTaskName) == tuple(task.value for task in vocabulary.MODEL_TASKS)
    assert set(vocabulary.MODEL_TASKS) == set(vocabulary.Task) - {vocabulary.Task.UNKNOWN}


def _changed(edit: Callable[[dict[str, dict[str, Any]]], None]) -> list[str]:
    named = copy.deepcopy(shipped_named_types())
    edit(named)
    return contract_differences(named)


def _field(named: dict[str, dict[str, Any]], record: str, field_name: str) -> dict[str, Any]:
    return next(f for f in named[f"{NAMESPACE}.{record}"]["fields"] if f["name"] == field_name)


def _reorder(named: dict[str, dict[str, Any]]) -> None:
    fields = named[f"{NAMESPACE}.Box"]["fields"]
    fields[1], fields[2] = fields[2], fields[1]


DRIFTS: dict[str, tuple[Callable[[dict[str, dict[str, Any]]], None], str]] = {
    "renamed field": (lambda n: _field(n, "Frame", "width").update(name="frame_width"), "Frame: fields"),
    "reordered fields": (_reorder, "Box: fields"),
    "changed type": (lambda n: _field(n, "Frame", "width").update(type="string"), "Frame.width: annotated"),
    "dropped nullability": (
        lambda n: _field(n, "InspectionResult", "part_id").update(type="string"),
        "InspectionResult.part_id: annotated",
    ),
    "changed default": (
        lambda n: _field(n, "PartView", "score").update(default=0.5),
        "PartView.score: Python default 0.0",
    ),
    "new default": (
        lambda n: _field(n, "Header", "key").update(default=""),
        "Header.key: schema default",
    ),
    "removed default": (
        lambda n: _field(n, "InspectionResult", "deadline_missed").pop("default"),
        "InspectionResult.deadline_missed: Python default False",
    ),
    "array of another type": (
        lambda n: _field(n, "GroundTruth", "labels").update(type={"type": "array", "items": "long"}),
        "GroundTruth.labels: annotated",
    ),
    "new enum symbol": (
        lambda n: n[f"{NAMESPACE}.Verdict"]["symbols"].append("REWORK"),
        "Verdict: members",
    ),
    "reordered enum symbols": (
        lambda n: n[f"{NAMESPACE}.Task"]["symbols"].reverse(),
        "Task: members",
    ),
    "new record type": (
        lambda n: n.update({f"{NAMESPACE}.Lot": {"type": "record", "name": "Lot", "fields": []}}),
        "dev.lineguard.v1.Lot: in the schemas but no Python class",
    ),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_a_schema_that_drifts_from_its_record_is_reported(drift: str) -> None:
    edit, message = DRIFTS[drift]

    problems = _changed(edit)

    assert any(problem.startswith(message) for problem in problems), problems


def _record_datums(
    datum: Any, avro_type: Any, named: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[str, Any]]:
    """(record full name, datum) for the datum and every record datum nested in it."""
    if isinstance(avro_type, str) and _full(avro_type) in named:
        avro_type = named[_full(avro_type)]
    if isinstance(avro_type, list):
        for branch in avro_type:
            if branch != "null" and datum is not None:
                yield from _record_datums(datum, branch, named)
        return
    if not isinstance(avro_type, dict):
        return
    if avro_type.get("type") == "record":
        yield _full(avro_type["name"]), datum
        for avro_field in avro_type["fields"]:
            yield from _record_datums(datum[avro_field["name"]], avro_field["type"], named)
    elif avro_type.get("type") == "array":
        for item in datum:
            yield from _record_datums(item, avro_type["items"], named)


def test_to_dict_writes_every_field_in_schema_order() -> None:
    named = shipped_named_types()
    seen = set()
    records = [build() for build in GOLDEN_RECORDS.values()] + [claim_check_frame()]
    for record in records:
        for full_name, datum in _record_datums(record.to_dict(), record.avro_name, named):
            seen.add(full_name)
            assert list(datum) == [f["name"] for f in named[full_name]["fields"]], full_name

    assert seen == set(RECORD_CLASSES)  # the golden records reach every record type
