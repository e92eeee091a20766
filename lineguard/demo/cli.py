"""``lineguard demo``: a synthetic camera, a worker and a live view, end to end on this machine.

Only Typer is imported at module level; the demo's machinery (Kafka clients, OpenCV, the model) loads when the
command runs, so ``lineguard --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from infra.endpoints import Endpoints
    from lineguard.demo.console_step import DemoConsole
    from lineguard.demo.run import DemoOptions


def demo(
    frames: Annotated[int, typer.Option("--frames", min=1, help="stop after this many frames")] = 300,
    fps: Annotated[
        float, typer.Option("--fps", min=0.1, help="camera rate; 10 suits a 2-core machine at 640x480")
    ] = 10.0,
    size: Annotated[str, typer.Option("--size", help="frame size WIDTHxHEIGHT")] = "640x480",
    defect_rate: Annotated[
        float, typer.Option("--defect-rate", min=0.0, max=1.0, help="share of frames with a defect")
    ] = 0.3,
    seed: Annotated[int, typer.Option("--seed", help="synthetic frames are reproducible per seed")] = 0,
    model: Annotated[
        Path | None, typer.Option("--model", help="model artifact directory (default: the shipped model)")
    ] = None,
    topic_prefix: Annotated[
        str, typer.Option("--topic-prefix", help="topics <prefix>.frames, .results, .defect-events, ...")
    ] = "lineguard-demo",
    database: Annotated[str, typer.Option("--database", help="MongoDB database for the results")] = (
        "lineguard_demo"
    ),
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", min=1)] = 16,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0)] = 20.0,
    start_stack: Annotated[
        bool,
        typer.Option(
            "--stack/--no-stack",
            help="start the local stack when KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI are unset and none runs",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="no live table; print the summary as JSON")] = False,
    console: Annotated[
        bool,
        typer.Option(
            "--console",
            help="also serve the inspection console on the demo's topics (its live view shows the defects as "
            "they come); it keeps serving after the summary until Ctrl-C",
        ),
    ] = False,
    console_port: Annotated[int, typer.Option("--console-port", min=1, max=65535)] = 8765,
) -> None:
    """Run the whole system: a synthetic camera -> Kafka -> a worker -> results, events and MongoDB.

    Shows a live table (results/s, capture-to-result latency, defects by class, consumer lag, dead letters),
    stops after --frames or Ctrl-C, and prints a summary scored against the frames' ground truth.
    Exit codes: 0 = every published frame got a result or a dead letter; 1 = some did not; 2 = a
    configuration problem (no model, services unreachable).
    """
    from lineguard.demo.run import DemoOptions, resolve_model
    from streams.sources.spec import parse_size

    width, height = parse_size(size, "--size")
    options = DemoOptions(
        frames=frames,
        fps=fps,
        width=width,
        height=height,
        defect_rate=defect_rate,
        seed=seed,
        model=model,
        topic_prefix=topic_prefix,
        database=database,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
    )
    resolve_model(model)  # a missing or broken model fails here, before any service is touched
    port = console_port if console else None
    summary = _run_json(options, start_stack, port) if as_json else _run_live(options, start_stack, port)
    complete = summary["missing_results"] == 0 or summary["stopped_by"] != "frames"
    raise typer.Exit(0 if complete else 1)


def _start_console(options: DemoOptions, endpoints: Endpoints, port: int | None) -> DemoConsole | None:
    from lineguard.demo.console_step import DemoConsole

    if port is None:
        return None
    return DemoConsole.start(
        endpoints, options.database, options.topic_prefix, options.group_id, port, options.log_dir
    )


def _run_json(options: DemoOptions, start_stack: bool, console_port: int | None = None) -> dict[str, Any]:
    from lineguard.demo.run import DemoRun, prepare_endpoints

    def progress(message: str) -> None:
        typer.echo(message, err=True)

    endpoints = prepare_endpoints(start_stack, progress)
    console = _start_console(options, endpoints, console_port)
    try:
        summary = DemoRun(options, endpoints).run()
    except BaseException:
        if console is not None:
            console.stop()
        raise
    if console is not None:
        console.describe(summary)
    typer.echo(json.dumps(summary, indent=2), color=False)
    if console is not None:
        console.serve_until_interrupted(progress)
    return summary


def _run_live(options: DemoOptions, start_stack: bool, console_port: int | None = None) -> dict[str, Any]:
    from rich.console import Console
    from rich.live import Live
    from rich.logging import RichHandler

    from lineguard.demo.run import DemoRun, LiveStatus, prepare_endpoints
    from lineguard.demo.view import live_table, summary_view

    console = Console()
    endpoints = prepare_endpoints(start_stack, lambda message: console.print(f"[dim]{message}[/dim]"))
    web = _start_console(options, endpoints, console_port)
    root = logging.getLogger()
    previous = root.handlers[:]
    # Log lines go through the console, above the live table, instead of tearing it.
    root.handlers[:] = [RichHandler(console=console, show_path=False)]
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:

            def show(status: LiveStatus) -> None:
                live.update(live_table(status))

            summary = DemoRun(options, endpoints, on_update=show).run()
    except BaseException:
        if web is not None:
            web.stop()
        raise
    finally:
        root.handlers[:] = previous
    if web is not None:
        web.describe(summary)
    console.print(summary_view(summary))
    if web is not None:
        web.serve_until_interrupted(console.print)
    return summary


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``lineguard`` command."""
    app.command("demo")(demo)
