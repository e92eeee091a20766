"""``python -m chaos``: ``run`` (faults while frames flow, then an audit) and ``bad-input`` (the campaign).

Both print a table, or one JSON object with ``--json``, and exit 1 when a goal is missed, so CI can run them.
Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from infra.exits import run_cli
from infra.logs import LogFormat, configure_logging
from schemas.errors import ConfigurationError

app = typer.Typer(
    help="Fault injection and bad-input campaigns against a live lineguard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _work_dir(path: Path | None) -> Path:
    return path if path is not None else Path(tempfile.mkdtemp(prefix="lineguard-chaos-"))


def _print(figures: dict[str, Any], title: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = "\n".join(map(str, value)) or "-"
        table.add_row(key, str(value))
    Console().print(table)


@app.command("bad-input")
def bad_input(
    cases: Annotated[int, typer.Option("--cases", min=1, help="bad records to send")] = 10_000,
    seed: Annotated[int, typer.Option("--seed")] = 2026,
    good: Annotated[int, typer.Option("--good-frames", min=1, help="good frames sent afterwards")] = 200,
    model: Annotated[
        Path | None, typer.Option("--model", help="model artifact (default: test model)")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="worker logs (default: a temp dir)")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the topics and the database")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Send seeded poison records through a live worker; every one must become a dead letter."""
    from chaos.campaign import CampaignConfig, run_campaign
    from chaos.model import resolve_model
    from lineguard.stack.endpoints import resolve_endpoints

    config = CampaignConfig(
        cases=cases,
        model=resolve_model(model),
        work_dir=_work_dir(work_dir),
        seed=seed,
        good_frames=good,
        keep=keep,
    )
    report = run_campaign(config, resolve_endpoints())
    figures = report.to_json()
    figures["worker_logs"] = str(config.work_dir)
    _print(figures, "bad-input campaign", as_json)
    for crash in report.crash_logs[:3]:
        typer.echo(f"--- worker log before a crash ---\n{crash}", err=True)
    raise typer.Exit(0 if report.passed else 1)


@app.command("run")
def run(
    mode: Annotated[str, typer.Option("--mode", help="at-least-once or exactly-once")] = "at-least-once",
    frames: Annotated[int, typer.Option("--frames", min=10, help="frames to produce")] = 3000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    worker_kills: Annotated[int, typer.Option("--worker-kills", min=0)] = 20,
    broker_restarts: Annotated[int, typer.Option("--broker-restarts", min=0)] = 1,
    mongo_outages: Annotated[int, typer.Option("--mongo-outages", min=0)] = 1,
    mongo_outage_s: Annotated[float, typer.Option("--mongo-outage-s", min=0)] = 30.0,
    mongo_sigkill: Annotated[
        bool,
        typer.Option("--mongo-sigkill/--mongo-sigterm", help="crash MongoDB (default) or stop it cleanly"),
    ] = True,
    producer_restarts: Annotated[int, typer.Option("--producer-restarts", min=0)] = 2,
    fps: Annotated[float, typer.Option("--fps", min=1, help="producer rate")] = 15.0,
    bad_inputs: Annotated[int, typer.Option("--bad-inputs", min=0, help="poison records mixed in")] = 30,
    model: Annotated[
        Path | None, typer.Option("--model", help="model artifact (default: test model)")
    ] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="stack, spool, logs")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Produce frames while killing workers, the broker and MongoDB; then audit every output."""
    from chaos.harness import FaultPlan, HarnessConfig, run_harness
    from chaos.model import resolve_model

    if mode not in ("at-least-once", "exactly-once"):
        raise ConfigurationError(f"--mode must be at-least-once or exactly-once, got {mode!r}")
    config = HarnessConfig(
        exactly_once=mode == "exactly-once",
        frames=frames,
        seed=seed,
        fps=fps,
        bad_inputs=bad_inputs,
        model=resolve_model(model),
        work_dir=_work_dir(work_dir),
        plan=FaultPlan(
            worker_kills=worker_kills,
            broker_restarts=broker_restarts,
            mongo_outages=mongo_outages,
            mongo_outage_s=mongo_outage_s,
            mongo_sigkill=mongo_sigkill,
            producer_restarts=producer_restarts,
        ),
    )
    report = run_harness(config)
    _print(report.to_json(), f"chaos run ({mode})", as_json)
    raise typer.Exit(0 if report.passed else 1)


@app.command("plc-kills")
def plc_kills(
    kills: Annotated[int, typer.Option("--kills", min=1)] = 20,
    parts: Annotated[int, typer.Option("--parts", min=1)] = 200,
    silent_s: Annotated[float, typer.Option("--silent-s", min=0, help="PLC silent this long, once")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """SIGKILL the PLC bridge mid-handshake repeatedly; audit: every decision at the PLC exactly once."""
    import argparse

    from chaos.plc_kill import kill_loop, passed

    report = kill_loop(argparse.Namespace(kills=kills, parts=parts, silent_s=silent_s))
    _print(report, "PLC bridge kills", as_json)
    if not passed(report):
        raise typer.Exit(1)


@app.command("net-faults")
def net_faults(
    mode: Annotated[str, typer.Option("--mode", help="at-least-once or exactly-once")] = "exactly-once",
    frames: Annotated[int, typer.Option("--frames", min=10, help="frames to produce")] = 2400,
    links: Annotated[str, typer.Option("--links", help="comma list: kafka,mongodb")] = "kafka,mongodb",
    kinds: Annotated[
        str, typer.Option("--kinds", help="comma list: latency,bandwidth,reset,partition,half_open")
    ] = "latency,bandwidth,reset,partition,half_open",
    fault_s: Annotated[float, typer.Option("--fault-s", min=1, help="latency/bandwidth length")] = 10.0,
    partition_s: Annotated[float, typer.Option("--partition-s", min=1)] = 30.0,
    gap_s: Annotated[float, typer.Option("--gap-s", min=0, help="clean network between faults")] = 8.0,
    fps: Annotated[float, typer.Option("--fps", min=1, help="producer rate (at most)")] = 10.0,
    kafka_extra: Annotated[
        str,
        typer.Option(
            "--kafka-extra", help='workers\' librdkafka settings, JSON: {"socket.timeout.ms": 10000}'
        ),
    ] = "{}",
    mongodb_options: Annotated[
        str,
        typer.Option("--mongodb-options", help="workers' MongoDB URI options, e.g. socketTimeoutMS=10000"),
    ] = "",
    model: Annotated[
        Path | None, typer.Option("--model", help="model artifact (default: test model)")
    ] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="broker, spool, logs")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Latency, bandwidth, resets, a partition and half-open connections between the workers and Kafka /
    MongoDB (through fault proxies); then the same audit as ``run``, and the recovery after each fault."""
    from chaos.model import resolve_model
    from chaos.netfaults import NetConfig, parse_plan, run_net_faults

    if mode not in ("at-least-once", "exactly-once"):
        raise ConfigurationError(f"--mode must be at-least-once or exactly-once, got {mode!r}")
    faults = parse_plan(links, kinds, fault_s, partition_s)
    try:
        extra = json.loads(kafka_extra)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"--kafka-extra is not JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise ConfigurationError("--kafka-extra must be a JSON object")
    options = dict(item.partition("=")[::2] for item in mongodb_options.split("&") if item)
    config = NetConfig(
        exactly_once=mode == "exactly-once",
        frames=frames,
        model=resolve_model(model),
        work_dir=_work_dir(work_dir),
        faults=faults,
        fps=fps,
        gap_s=gap_s,
        kafka_extra=extra,
        mongodb_options=options,
    )
    report = run_net_faults(config)
    figures = report.to_json()
    figures["worker_logs"] = str(config.work_dir)
    _print(figures, f"network faults ({mode})", as_json)
    raise typer.Exit(0 if report.passed else 1)


def _entry(command: typer.Typer) -> None:
    configure_logging("INFO", LogFormat.text)
    logging.getLogger("chaos").setLevel(logging.INFO)
    # The stand-in PLC (asyncua server) logs every read and write at INFO: thousands of lines per run.
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    run_cli(command)


def main() -> None:
    _entry(app)


def bad_input_main() -> None:
    """``bench/bad_input_campaign.py``: the ``bad-input`` command alone."""
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(bad_input)
    _entry(standalone)
