"""`lineguard stack`: placeholder until the launcher lands (issue 2)."""

import typer

app = typer.Typer(help="Start, stop and inspect the local Kafka + MongoDB stack.", no_args_is_help=True)
