"""Options every command against AWS shares: which model, which endpoint (a local stack or AWS), which region."""

from __future__ import annotations

import argparse
import os

from edgeloop.core.names import DEFAULT_MODEL_NAME
from edgeloop.core.settings import ENV_MODEL_NAME


def with_target(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --model, --endpoint-url and --region to a subcommand."""
    default_model = os.environ.get(ENV_MODEL_NAME) or DEFAULT_MODEL_NAME
    parser.add_argument("--model", default=default_model, help=f"model name (default {default_model})")
    parser.add_argument("--endpoint-url", default=None, help="AWS endpoint, e.g. a local stack (or AWS_ENDPOINT_URL)")
    parser.add_argument("--region", default=None, help="AWS region (default: the configured one)")
    return parser


def version_number(text: str) -> int:
    """A registry version on the command line: 1, 2, ..."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number (1, 2, ...)")
    return int(text)
