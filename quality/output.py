"""Every table as CSV, Parquet (when pyarrow is installed) and one JSON document with the summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from quality.tables import Report


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def table_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{key: _jsonable(value) for key, value in row.items()} for row in table.to_dict("records")]


def report_json(report: Report, query: str) -> dict[str, Any]:
    return {
        "query": query,
        "summary": {key: _jsonable(value) for key, value in report.summary.items()},
        "tables": {name: table_records(table) for name, table in report.tables.items()},
    }


def write_tables(report: Report, query: str, out: Path) -> list[Path]:
    """Writes ``tables/<name>.csv`` (+ ``.parquet``) and ``report.json``; returns the files written."""
    tables_dir = out / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        import pyarrow  # noqa: F401

        parquet = True
    except ImportError:
        parquet = False
    for name, table in report.tables.items():
        csv_path = tables_dir / f"{name}.csv"
        table.to_csv(csv_path, index=False)
        written.append(csv_path)
        if parquet:
            parquet_path = tables_dir / f"{name}.parquet"
            table.astype({col: str for col in table.columns if table[col].dtype == object}).to_parquet(
                parquet_path, index=False
            )
            written.append(parquet_path)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report_json(report, query), indent=1, default=str))
    written.append(json_path)
    return written
