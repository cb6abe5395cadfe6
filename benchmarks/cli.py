"""How fast `edgeloop --help` and each subcommand's help answer: fresh interpreters, the median of several runs.

The help must not wait for numpy, boto3 or the local stack (tests/cli/test_cli_main.py checks what it imports);
this measures what that buys on this machine. Python's own start is measured the same way, for scale.

- python_s: `python -c pass`, the floor every command pays;
- help_s: the median wall time of `edgeloop <command> --help`, per command;
- slowest_s: the slowest command's median (the issue's bound: under 0.5 s).

    python benchmarks/cli.py [--quick]

Prints one line per command, then, as its last line, one JSON object with the keys runs, python_s, slowest_s, help_s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import emit, parse_args

KEYS = ("runs", "python_s", "slowest_s", "help_s")
COMMANDS = ("", "demo", "train", "models", "models list", "rollout", "rollout status")
ROOT = Path(__file__).resolve().parents[1]


def median_s(argv: list[str], runs: int) -> float:
    """The median wall time of running argv in a fresh process, output discarded."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> None:
    args = parse_args(__doc__ or "")
    runs = 3 if args.quick else 9
    python_s = median_s([sys.executable, "-c", "pass"], runs)
    help_s = {}
    for command in COMMANDS:
        help_s[command or "edgeloop"] = median_s(
            [sys.executable, "-m", "edgeloop.cli.main", *command.split(), "--help"], runs
        )
        print(f"edgeloop {command} --help".replace("  ", " ") + f": {help_s[command or 'edgeloop']:.3f} s", flush=True)
    emit({"runs": runs, "python_s": python_s, "slowest_s": max(help_s.values()), "help_s": help_s}, KEYS)


if __name__ == "__main__":
    main()
