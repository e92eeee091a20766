"""Rewrite the golden Avro files from the fixed records in ``records.py``.

Run only when the contract changes on purpose (a new schema version), and review the diff:

    .venv/bin/python -m tests.unit.golden.regenerate

Each ``<Record>.bin`` is the single-object encoding (``C3 01`` + fingerprint + body) the serializer writes
without a registry; ``test_schemas_golden.py`` fails when today's encoding differs from it.
"""

from __future__ import annotations

from pathlib import Path

from schemas.serde import AvroRecordSerializer
from tests.unit.golden.records import GOLDEN_RECORDS

GOLDEN_DIR = Path(__file__).resolve().parent


def golden_path(stem: str) -> Path:
    return GOLDEN_DIR / f"{stem}.bin"


def main() -> None:
    for stem, build in GOLDEN_RECORDS.items():
        record = build()
        data = AvroRecordSerializer(type(record))(record)
        assert data is not None
        golden_path(stem).write_bytes(data)
        print(f"wrote {golden_path(stem)} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
