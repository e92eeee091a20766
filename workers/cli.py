"""``lineguard worker`` and ``lineguard dlq inspect|replay``.

Nothing heavy is imported at module level: TensorFlow, ONNX Runtime and OpenCV load inside the commands, so
``lineguard --help`` stays fast. Command-line options override ``LINEGUARD_WORKER_*``; unset options leave
the environment (or the defaults) in charge.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.endpoints import resolve_endpoints
from infra.exits import run_cli
from infra.kafka_access import verify_kafka_access
from infra.logs import LogFormat, configure_logging
from schemas.errors import ConfigurationError, LineguardError
from schemas.records import DeadLetterReason
from schemas.topics import DEAD_LETTER_TOPIC, FRAMES_TOPIC, TopicNames
from workers.dlq import (
    DeadLetterScan,
    StoredDeadLetter,
    replay,
    replay_problem,
    scan_dead_letters,
    selector,
)
from workers.shadow.cli import shadow_app  # the shadow worker is this worker with role=shadow

if TYPE_CHECKING:  # at run time imported by the command: pydantic-settings costs `worker --help` 80 ms
    from workers.settings import WorkerSettings

log = logging.getLogger(__name__)

# Every option of `lineguard worker` reads the WorkerSettings field of the same meaning from the environment.
_ENV = "LINEGUARD_WORKER_"

dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)


def worker(
    topic: str | None = typer.Option(
        None, "--topic", help="frames topic to consume", envvar=f"{_ENV}FRAMES_TOPIC"
    ),
    topic_prefix: str | None = typer.Option(
        None,
        "--topic-prefix",
        help="use <prefix>.frames, <prefix>.results, ... for all four topics",
        envvar=f"{_ENV}TOPIC_PREFIX",
    ),
    group: str | None = typer.Option(None, "--group", help="consumer group id", envvar=f"{_ENV}GROUP_ID"),
    model: Annotated[
        Path | None,
        typer.Option("--model", help="model artifact directory (default: shipped)", envvar=f"{_ENV}MODEL"),
    ] = None,
    backend: str | None = typer.Option(
        None, "--backend", help="auto, onnx or keras (alias tensorflow)", envvar=f"{_ENV}BACKEND"
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="cpu, cuda, tensorrt or auto (default); a missing GPU falls back to the CPU "
        "[env: LINEGUARD_DEVICE too]",
        envvar=f"{_ENV}DEVICE",  # LINEGUARD_DEVICE is read by the settings when neither is set
    ),
    max_batch_size: int | None = typer.Option(
        None, "--max-batch-size", min=1, envvar=f"{_ENV}MAX_BATCH_SIZE"
    ),
    max_wait_ms: float | None = typer.Option(None, "--max-wait-ms", min=0, envvar=f"{_ENV}MAX_WAIT_MS"),
    exactly_once: bool | None = typer.Option(
        None,
        "--exactly-once/--at-least-once",
        help="transactional outputs (read them with read_committed)",
        envvar=f"{_ENV}EXACTLY_ONCE",
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Prometheus + /live /ready; 0 = off", envvar=f"{_ENV}METRICS_PORT"
    ),
    worker_id: str | None = typer.Option(
        None, "--worker-id", help="stable id (needed for --exactly-once)", envvar=f"{_ENV}WORKER_ID"
    ),
    thresholds: Annotated[
        Path | None,
        typer.Option("--thresholds", help="per-line/camera thresholds YAML/JSON", envvar=f"{_ENV}THRESHOLDS"),
    ] = None,
    decode_threads: int | None = typer.Option(
        None, "--decode-threads", min=0, help="0 = number of cores", envvar=f"{_ENV}DECODE_THREADS"
    ),
    line: str | None = typer.Option(
        None,
        "--line",
        help="serve this line's production model from the registry (instead of --model)",
        envvar=f"{_ENV}LINE",
    ),
    registry: str | None = typer.Option(
        None, "--registry", help="model registry: directory or mongodb:// URI", envvar=f"{_ENV}REGISTRY"
    ),
    startup_timeout_s: float | None = typer.Option(
        None,
        "--startup-timeout-s",
        envvar=f"{_ENV}STARTUP_TIMEOUT_S",
        min=0,
        help="wait this long for MongoDB at start (default 60; 0 = no wait)",
    ),
    deadline_ms: float | None = typer.Option(
        None,
        "--deadline-ms",
        min=0,
        envvar=f"{_ENV}DEADLINE_MS",
        help="capture -> verdict deadline of every line, ms (0 = none); frames that cannot make it are "
        f"decided fail-safe ({_ENV}DEADLINE_FAIL_SAFE; per line: {_ENV}DEADLINE_LINES)",
    ),
) -> None:
    """Consume frames, run the model in dynamic batches, write results, defect events and MongoDB docs."""
    from pydantic import ValidationError

    from workers.settings import WorkerSettings

    overrides: dict[str, Any] = {
        "frames_topic": topic,
        "group_id": group,
        "model": model,
        "backend": backend,
        "device": device.lower() if device else None,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "exactly_once": exactly_once,
        "metrics_port": metrics_port,
        "worker_id": worker_id,
        "thresholds": thresholds,
        "decode_threads": decode_threads,
        "line": line,
        "registry": registry,
        "startup_timeout_s": startup_timeout_s,
        "deadline_ms": deadline_ms,
    }
    if topic_prefix:
        names = TopicNames.with_prefix(topic_prefix)
        overrides.update(
            frames_topic=topic or names.frames,
            results_topic=names.results,
            defect_events_topic=names.defect_events,
            dead_letter_topic=names.dead_letters,
        )
    try:
        settings = WorkerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid worker settings: {problems}") from exc
    raise typer.Exit(run_worker(settings))


def run_worker(settings: WorkerSettings) -> int:
    """Run a worker until SIGTERM/SIGINT; returns its exit code (0 = drained and committed)."""
    from workers.pipeline import Worker

    instance = Worker(settings)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: draining", signal.Signals(signum).name)
        instance.stop()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return instance.run()


@dlq_app.command("inspect")
def dlq_inspect(
    topic: str = typer.Option(DEAD_LETTER_TOPIC, "--topic", help="dead-letter topic"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="read at most this many"),
    show: int = typer.Option(10, "--show", min=0, help="list the latest N dead letters"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary"),
    timeout: float = typer.Option(
        30.0, "--timeout-s", min=0.1, help="seconds to reach the end of the topic; exit 1 when it does not"
    ),
) -> None:
    """Summarise the dead-letter topic: counts by reason and the latest records. Ends at the topic's end
    (exactly-once transaction markers included); a list cut short by --limit or --timeout-s says so."""

    scan = scan_dead_letters(_kafka_config(), topic, limit=limit, timeout_s=timeout)
    counts = scan.by_reason()
    partial_note = _partial_note(scan, limit, timeout)
    if as_json:
        summary = {
            "topic": topic,
            "total": len(scan.letters),
            "complete": scan.complete,
            "partial": scan.partial,
            "unfinished_partitions": list(scan.unfinished),
            "unreadable": scan.unreadable,
            "by_reason": {reason.value: count for reason, count in counts.most_common()},
            "latest": [_describe(stored) for stored in scan.letters[-show:]] if show else [],
        }
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_inspection(topic, scan, show, partial_note)
    if partial_note:
        typer.secho(partial_note, err=True, fg=typer.colors.YELLOW)
    if scan.partial == "timeout":
        raise typer.Exit(1)


def _partial_note(scan: DeadLetterScan, limit: int | None, timeout: float) -> str:
    if scan.partial == "limit":
        return f"partial: stopped at --limit {limit}; the topic holds more dead letters"
    if scan.partial == "timeout":
        unfinished = ", ".join(str(p) for p in scan.unfinished)
        return (
            f"partial: partitions {unfinished} not read to their end within {timeout:g} s "
            "(raise --timeout-s, or check the brokers)"
        )
    return ""


def _print_inspection(topic: str, scan: DeadLetterScan, show: int, partial_note: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    counts = scan.by_reason()
    title = f"{topic}: {len(scan.letters)} dead letters" + (" (partial)" if partial_note else "")
    table = Table(title=title)
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, count in counts.most_common():
        table.add_row(reason.value, str(count))
    console.print(table)
    if scan.unreadable:
        console.print(f"[yellow]{scan.unreadable} records on the topic are not dead letters[/yellow]")
    if show and scan.letters:
        latest = Table(title=f"latest {min(show, len(scan.letters))}")
        for column in ("dlq offset", "reason", "source", "worker", "message"):
            latest.add_column(column)
        for stored in scan.letters[-show:]:
            item = _describe(stored)
            latest.add_row(
                f"{stored.partition}@{stored.offset}",
                item["reason"],
                item["source"],
                item["worker"],
                item["error"],
            )
        console.print(latest)


@dlq_app.command("replay")
def dlq_replay(
    topic: str = typer.Option(DEAD_LETTER_TOPIC, "--topic", help="dead-letter topic"),
    to: str = typer.Option(FRAMES_TOPIC, "--to", help="frames topic to re-publish to"),
    reason: Annotated[
        list[str] | None, typer.Option("--reason", help="only these reasons (repeatable)")
    ] = None,
    source_partition: int | None = typer.Option(None, "--source-partition", help="only from this partition"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="replay at most this many"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be replayed"),
    timeout: float = typer.Option(30.0, "--timeout-s", min=0.1, help="seconds to read the dead-letter topic"),
) -> None:
    """Re-publish selected dead letters' original records to the frames topic. Dead letters without their
    original value (too large to carry) are never replayed as null records: they are listed with the reason,
    and the exit code is 1."""

    try:
        reasons = [DeadLetterReason(value.upper()) for value in reason or ()]
    except ValueError as exc:
        known = ", ".join(r.value for r in DeadLetterReason)
        raise ConfigurationError(f"unknown reason in {reason}; choose from {known}") from exc
    config = _kafka_config()
    scan = scan_dead_letters(config, topic, timeout_s=timeout)
    if scan.partial == "timeout":
        raise LineguardError(_partial_note(scan, None, timeout) + "; nothing replayed")
    chosen = [stored for stored in scan.letters if selector(reasons, source_partition)(stored)]
    if limit is not None:
        chosen = chosen[:limit]
    if dry_run:
        unusable = sum(1 for stored in chosen if replay_problem(stored.letter) is not None)
        typer.echo(
            f"would replay {len(chosen) - unusable} of {len(scan.letters)} dead letters to {to}"
            + (f" ({unusable} selected have no original value to replay)" if unusable else "")
        )
        return
    report = replay(config, chosen, to)
    typer.echo(f"replayed {report.delivered} of {len(scan.letters)} dead letters to {to}")
    if report.not_replayed:
        typer.secho(f"not replayed: {len(report.not_replayed)}", err=True, fg=typer.colors.YELLOW)
        for item in report.not_replayed:
            typer.echo(f"  {topic}[{item.stored.partition}]@{item.stored.offset}: {item.why}", err=True)
        raise typer.Exit(1)


def _describe(stored: StoredDeadLetter) -> dict[str, str]:
    letter = stored.letter
    source = letter.source
    return {
        "reason": letter.reason.value,
        "source": f"{source.topic}[{source.partition}]@{source.offset}",
        "worker": letter.worker_id,
        "error": f"{letter.error_class}: {letter.error_message}"[:160],
        "failed_at": letter.failed_at.isoformat(),
    }


def _kafka_config() -> dict[str, Any]:
    from infra.settings import KafkaSettings

    config = KafkaSettings().client_config(resolve_endpoints().kafka_bootstrap)
    verify_kafka_access(config)  # refused credentials: one clear error instead of an empty scan
    return config


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``dlq`` to the ``lineguard`` command."""
    app.command("worker")(worker)
    app.add_typer(dlq_app, name="dlq")

    app.add_typer(shadow_app, name="shadow")


def main() -> None:
    """``python -m workers``: the worker command alone, with the CLI's logging and error conventions."""

    configure_logging("INFO", LogFormat.text)
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(worker)
    run_cli(standalone)
