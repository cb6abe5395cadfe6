"""Reading a synthesized CloudFormation template: what every infra test needs, written once."""

from __future__ import annotations

from typing import Any

from infra.nag import flatten_reference


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


def function_props(template: dict[str, Any], handler: str) -> dict[str, Any]:
    """The properties of the one function whose Handler is this (module.handler)."""
    [function] = [
        r["Properties"]
        for r in of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"]["Handler"] == handler
    ]
    props: dict[str, Any] = function
    return props


def function_env(template: dict[str, Any], module: str) -> dict[str, Any]:
    """The environment of the handler in functions/<module>.py."""
    env: dict[str, Any] = function_props(template, f"{module}.handler")["Environment"]["Variables"]
    return env


def env_strings(env: dict[str, Any]) -> dict[str, str]:
    """The variables synth already knows (the rest are CloudFormation references)."""
    return {k: v for k, v in env.items() if isinstance(v, str)}


def statements_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement of every policy attached to one role."""
    return [
        statement
        for policy in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def handler_statements(synthesized: Any, module: str) -> list[dict[str, Any]]:
    """The statements granted to one handler's role, the handler named by its functions/ module."""
    return statements_of_role(synthesized.template, logical_id(synthesized, synthesized.stack.handlers()[module].role))


def handler_grants(synthesized: Any, module: str, prefix: str) -> dict[str, set[str]]:
    """action -> the resources (flattened) it is granted on, for one handler's actions starting with prefix."""
    out: dict[str, set[str]] = {}
    for statement in handler_statements(synthesized, module):
        for action in as_list(statement["Action"]):
            if action.startswith(prefix):
                out.setdefault(action, set()).update(flatten_reference(r) for r in as_list(statement["Resource"]))
    return out


def table_arn(synthesized: Any, table: Any) -> str:
    """A table's ARN as flatten_reference renders it."""
    return f"<{logical_id(synthesized, table)}.Arn>"


def rule_for(template: dict[str, Any], function_id: str) -> dict[str, Any]:
    """The properties of the one EventBridge rule whose first target is this function."""
    rules: list[dict[str, Any]] = [
        r["Properties"]
        for r in of_type(template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    [rule] = rules
    return rule


def render(node: Any, refs: dict[str, str]) -> str:
    """A CloudFormation string value with each Ref replaced as if deployed (only Ref and Fn::Join occur)."""
    if isinstance(node, str):
        return node
    if "Ref" in node:
        return refs[node["Ref"]]
    delimiter, parts = node["Fn::Join"]
    return str(delimiter).join(render(part, refs) for part in parts)


def matches(pattern: dict[str, Any], event: dict[str, Any], refs: dict[str, str] | None = None) -> bool:
    """EventBridge matching for the patterns we use: exact values, prefixes, nested objects."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not matches(expected, value, refs):
                return False
        elif not any(_value_matches(e, value, refs or {}) for e in expected):
            return False
    return True


def _value_matches(expected: Any, value: Any, refs: dict[str, str]) -> bool:
    if isinstance(expected, dict) and set(expected) == {"prefix"}:
        return isinstance(value, str) and value.startswith(render(expected["prefix"], refs))
    return bool(value == expected)
