"""`edgeloop train`: the SageMaker training entry point, run locally."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add the train subcommand; every option after it goes to the training entry point, which checks it."""
    parser = commands.add_parser(
        "train",
        help="run the training entry point locally (same code as the SageMaker training job)",
        add_help=False,
    )
    parser.set_defaults(run=run, forwards_arguments=True)


def run(args: argparse.Namespace) -> int:
    """Delegate to edgeloop.training.main with the remaining arguments."""
    from edgeloop.training import main

    return main(args.forwarded)
