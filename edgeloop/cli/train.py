"""`edgeloop train`: the SageMaker training entry point, run locally."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add the train subcommand; its options are the training entry point's own."""
    parser = commands.add_parser(
        "train",
        help="run the training entry point locally (same code as the SageMaker training job)",
        add_help=False,
    )
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Delegate to edgeloop.training.main with the remaining arguments."""
    from edgeloop.training import main

    return main(args.args)
