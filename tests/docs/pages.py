"""Reading README.md and the docs/ pages: what every docs test needs, written once."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def text(page: str) -> str:
    """One documentation page, by path from the repository root."""
    return (ROOT / page).read_text(encoding="utf-8")


def spans(source: str) -> list[str]:
    """Every inline code span of a markdown text, fenced blocks left out."""
    return re.findall(r"`([^`\n]+)`", prose(source))


def prose(source: str) -> str:
    """A markdown text without its fenced code blocks."""
    kept, fenced = [], False
    for line in source.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def blocks(source: str, lang: str | None = None) -> list[str]:
    """The bodies of the fenced code blocks, in order; with lang, only those of that language ("" for none)."""
    found: list[str] = []
    opened: str | None = None
    body: list[str] = []
    for line in source.splitlines():
        if opened is None and line.startswith("```"):
            opened, body = line[3:].strip(), []
        elif opened is not None and line.strip() == "```":
            if lang is None or opened == lang:
                found.append("\n".join(body) + "\n")
            opened = None
        elif opened is not None:
            body.append(line)
    return found


def table_rows(source: str) -> list[list[str]]:
    """The cells of every markdown table row, separator rows left out."""
    rows = [line.strip().strip("|").split(" | ") for line in source.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows if not set(row[0]) <= set("-| ")]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def named_module(page: str, suffix: str) -> Any:
    """The module a page names as the home of something (the first `edgeloop...` name ending as given)."""
    for span in spans(text(page)):
        name = span.removesuffix(".py").replace("/", ".")
        if name.startswith("edgeloop.") and name.endswith(suffix):
            return importlib.import_module(name)
    raise AssertionError(f"{page} names no module ending in {suffix!r}")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name (none: an empty mapping)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
