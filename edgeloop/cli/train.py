"""`edgeloop train`: the SageMaker training entry point, run locally."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

PROG = "edgeloop train"


def register(commands: Any) -> None:
    """Add the train subcommand; every option after it goes to the training entry point, which checks it."""
    parser = commands.add_parser(
        "train",
        help="run the training entry point locally (same code as the SageMaker training job)",
        add_help=False,
    )
    parser.set_defaults(run=run, forwards_arguments=True)


def run(args: argparse.Namespace) -> int:
    """Check the arguments with the light parser (`--help` answers there), then train with them."""
    from edgeloop.core.errors import UsageError
    from edgeloop.training.conventions import parse_arguments

    with contextlib.suppress(UsageError):  # main() parses again and reports it as a training job does
        parse_arguments(args.forwarded, prog=PROG)
    from edgeloop.training.job import main

    return main(args.forwarded)
