"""Reading a synthesized CloudFormation template: what every infra test needs, written once."""

from __future__ import annotations

from typing import Any


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one CloudFormation type, by logical id."""
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def logical_id(synthesized: Any, construct: Any) -> str:
    """The logical id of an L1, or of an L2's default child."""
    child = getattr(construct.node, "default_child", None) or construct
    return str(synthesized.stack.get_logical_id(child))


def as_list(value: Any) -> list[Any]:
    """An IAM statement's Action or Resource, which may be one value or a list, as a list."""
    return value if isinstance(value, list) else [value]
