"""Shared plumbing of the benchmark scripts: the --quick flag and the last-line JSON result."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Every benchmark takes --quick (under a minute on 2 cores); scripts add nothing else they need."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute on 2 cores")
    return parser.parse_args(argv)


def emit(result: Mapping[str, object], keys: Sequence[str]) -> None:
    """Print the result as the last line: one JSON object with exactly the keys the issue names."""
    if list(result) != list(keys):
        raise SystemExit(f"benchmark bug: result keys {list(result)} are not {list(keys)}")
    print(json.dumps(dict(result)), flush=True)
