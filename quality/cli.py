"""``lineguard report``: the quality report of a time range, as HTML + CSV/Parquet + JSON.

Exit codes: 0 with a report, 1 when no inspection matches the range and filters (nothing to report, said in
one line, like ``grep`` without a match), 2 for bad options or an unreachable / refusing MongoDB (or
PostgreSQL with ``--source postgres``).

Settings, clients and pandas are imported inside the commands: ``lineguard report --help`` loads Typer and
little else.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.endpoints import resolve_endpoints
from quality.query import ReportQuery
from schemas.errors import ConfigurationError, ServiceUnavailableError

if TYPE_CHECKING:
    from quality.cube import Cube

NO_DATA_EXIT = 1


def _time(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{name}: {text!r} is not an ISO time (e.g. 2026-01-05T06:00Z)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _rates(items: list[str]) -> dict[str, float]:
    rates: dict[str, float] = {}
    for item in items:
        version, sep, text = item.partition("=")
        try:
            rate = float(text)
        except ValueError:
            rate = -1.0
        if not sep or not version or not 0.0 < rate < 1.0:
            raise ConfigurationError(f"--expected-rate {item!r}: use VERSION=RATE with 0 < RATE < 1")
        rates[version] = rate
    return rates


def _mongo_uri() -> str:
    from infra.settings import MongoSettings

    settings = MongoSettings()
    if settings.uri is not None:
        return settings.uri.get_secret_value()
    return resolve_endpoints().mongodb_uri


def _from_mongodb(
    database: str | None, collection: str, labels_collection: str, query: ReportQuery
) -> tuple[Cube, list[dict[str, Any]]]:
    from pymongo import MongoClient

    from infra.settings import MongoSettings
    from quality.source import load_cube, load_labels

    client: MongoClient[dict[str, Any]] = MongoClient(_mongo_uri(), serverSelectionTimeoutMS=10_000)
    try:
        db = client[database or MongoSettings().database]
        try:
            cube = load_cube(db, collection, query)
            labels = load_labels(db, collection, labels_collection, query) if cube.total else []
        except ServiceUnavailableError as exc:
            raise ConfigurationError(f"{exc} (is MONGODB_URI right and the server up?)") from None
    finally:
        client.close()
    return cube, labels


def _from_postgres(uri: str | None, query: ReportQuery) -> tuple[Cube, list[dict[str, Any]]]:
    """The MES sink's rows; labels live in MongoDB, not in the sink's tables, so none (said in one line)."""
    from infra.endpoints import POSTGRES, POSTGRES_ENV, resolve_service
    from quality.source_pg import load_cube_pg

    try:
        cube = load_cube_pg(uri or resolve_service(POSTGRES, POSTGRES_ENV), query)
    except ServiceUnavailableError as exc:
        raise ConfigurationError(f"{exc} (is POSTGRES_URI right and the server up?)") from None
    typer.secho("--source postgres: no human labels in the MES tables, label agreement left out", err=True)
    return cube, []


def report_command(
    start: Annotated[str, typer.Option("--from", help="start of the range, ISO (UTC when no zone)")],
    end: Annotated[str | None, typer.Option("--to", help="end of the range (exclusive); default now")] = None,
    line: Annotated[str | None, typer.Option(help="only this line")] = None,
    camera: Annotated[str | None, typer.Option(help="only this camera")] = None,
    station: Annotated[str | None, typer.Option(help="only this station")] = None,
    model_version: Annotated[str | None, typer.Option("--model-version", help="only this model")] = None,
    database: Annotated[str | None, typer.Option(help="MongoDB database (default: settings)")] = None,
    collection: Annotated[str, typer.Option(help="inspections collection")] = "inspections",
    labels_collection: Annotated[str, typer.Option(help="human labels collection")] = "labels",
    shifts: Annotated[str, typer.Option(help="shift calendar NAME=HOUR,...")] = "early=06,late=14,night=22",
    timezone: Annotated[str, typer.Option(help="the plant's time zone for shifts and days")] = "UTC",
    spc_period: Annotated[str, typer.Option(help="p-chart subgroup: hour, shift or day")] = "hour",
    spc_baseline: Annotated[
        float | None, typer.Option(help="p-chart centre line (in-control rate); default the range's")
    ] = None,
    expected_rate: Annotated[
        list[str] | None, typer.Option(help="VERSION=RATE: a model's defect rate on validation data")
    ] = None,
    out: Annotated[Path, typer.Option(help="directory for report.html, report.json, tables/")] = Path(
        "lineguard-report"
    ),
    json_summary: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    source: Annotated[
        str, typer.Option(help="where the rows come from: mongodb, or postgres (the MES sink's tables)")
    ] = "mongodb",
    postgres_uri: Annotated[
        str | None,
        typer.Option("--postgres-uri", envvar="POSTGRES_URI", help="PostgreSQL URI (with --source postgres)"),
    ] = None,
) -> None:
    """Yield, first-pass yield, defect Pareto, shifts, lots, trends, SPC p-chart and model health."""
    from quality.output import write_tables
    from quality.render import write_html
    from quality.shifts import ShiftCalendar
    from quality.tables import build_report

    if source not in ("mongodb", "postgres"):
        raise ConfigurationError(f"--source {source!r}: use mongodb or postgres")
    if spc_period not in ("hour", "shift", "day"):
        raise ConfigurationError(f"--spc-period {spc_period!r}: use hour, shift or day")
    if spc_baseline is not None and not 0.0 < spc_baseline < 1.0:
        raise ConfigurationError("--spc-baseline must be a rate between 0 and 1")
    query = ReportQuery(
        start=_time(start, "--from"),
        end=_time(end, "--to") if end else datetime.now(UTC) + timedelta(seconds=1),
        line=line,
        camera=camera,
        station=station,
        model_version=model_version,
    )
    calendar = ShiftCalendar.parse(shifts, timezone)
    rates = _rates(expected_rate or [])
    if source == "postgres":
        cube, labels = _from_postgres(postgres_uri, query)
    else:
        cube, labels = _from_mongodb(database, collection, labels_collection, query)
    if not cube.total:
        typer.secho(f"no inspections in {query.describe()}: nothing to report", err=True)
        sys.exit(NO_DATA_EXIT)
    report = build_report(cube, calendar, spc_period, rates, labels, spc_baseline)  # type: ignore[arg-type]
    files = write_tables(report, query.describe(), out)
    html_path = write_html(report, query.describe(), out)
    if json_summary:
        from quality.output import report_json

        typer.echo(json.dumps(report_json(report, query.describe())["summary"]))
    else:
        s = report.summary
        typer.echo(
            f"{s['inspections']:,} inspections, yield {s['inspection_yield']:.2%}, first-pass "
            f"{s['first_pass_yield']:.2%}, {s['spc_points_flagged']} SPC points flagged: {html_path} "
            f"(+ {len(files)} table files)"
        )
