"""Grants whose wildcards are declared where they are made, so cdk-nag sees each one with its reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

WILDCARD_RULE = "AwsSolutions-IAM5"


def grant(role: iam.Role, *statements: iam.PolicyStatement, wildcard_reason: str | None = None) -> None:
    """Add statements to the role; with a reason, acknowledge exactly the wildcards they contain.

    cdk-nag reports one finding per wildcard action or resource (AwsSolutions-IAM5[Resource::...]);
    acknowledging those findings, not the whole rule, keeps any other wildcard a failure.
    """
    stack = cdk.Stack.of(role)
    for statement in statements:
        role.add_to_policy(statement)
        if wildcard_reason is None:
            continue
        for finding in sorted(set(wildcard_findings(stack, statement))):
            cdk.Validations.of(role).acknowledge(
                cdk.Acknowledgment(id=f"{WILDCARD_RULE}[{finding}]", reason=wildcard_reason)
            )


def wildcard_findings(stack: cdk.Stack, statement: iam.PolicyStatement) -> Iterator[str]:
    """The finding names cdk-nag gives this statement's wildcards (Action::x* and Resource::y*)."""
    resolved = stack.resolve(statement.to_statement_json())
    for action in _as_list(resolved.get("Action")):
        if "*" in action:
            yield f"Action::{action}"
    for resource in _as_list(resolved.get("Resource")):
        flat = flatten_reference(resource)
        if "*" in flat:
            yield f"Resource::{flat}"


def flatten_reference(node: Any) -> str:
    """Render a resolved CloudFormation value the way cdk-nag names it (Ref -> <X>, GetAtt -> <X.Y>)."""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict) and "Fn::Join" in node:
        delimiter, items = node["Fn::Join"]
        return str(delimiter).join(flatten_reference(item) for item in items)
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        resource, attribute = node["Fn::GetAtt"]
        return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
    if isinstance(node, dict) and "Ref" in node:
        return f"<{flatten_reference(node['Ref'])}>"
    if isinstance(node, dict) and "Fn::Sub" in node:
        return flatten_reference(node["Fn::Sub"])
    return json.dumps(node, separators=(",", ":"))  # cdk-nag's own fallback (JSON.stringify)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
