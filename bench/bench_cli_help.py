"""How long `lineguard --help` (and `lineguard SUBCOMMAND --help`) takes, start to exit: prints figures.

    .venv/bin/python bench/bench_cli_help.py [--runs 10] [--json]
The issue's target is <= 0.3 s for `lineguard --help`; this is a benchmark, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

LINEGUARD = Path(sys.executable).with_name("lineguard")


def time_command(args: list[str], runs: int) -> dict[str, float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(LINEGUARD), *args], capture_output=True, check=True)
        seconds.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    figures = {
        " ".join(args): time_command(args, options.runs)
        for args in (["--help"], ["--version"], ["worker", "--help"], ["lag", "--help"])
    }
    if options.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, figure in figures.items():
            print(f"{name:>20}: median {figure['median_s']:.3f} s, min {figure['min_s']:.3f} s")


if __name__ == "__main__":
    main()
