"""`edgeloop` entry point: parse, dispatch, map errors to one clear line and a stable exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from edgeloop import __version__
from edgeloop.core.errors import EdgeloopError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem as one line and exit code 2, naming the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(UsageError.exit_code, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; each group adds its own subcommand."""
    from edgeloop.cli import demo, models, rollout, train

    parser = _Parser(prog="edgeloop", description="Close the loop between AWS and a Greengrass edge fleet.")
    parser.add_argument("--version", action="version", version=f"edgeloop {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what every part of the stack does")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo.register(commands)
    train.register(commands)
    models.register(commands)
    rollout.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; an EdgeloopError becomes `error: ...` on stderr and its exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "forwards_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.forwarded = extra
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.run(args)
    except EdgeloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
