"""docs/infra.md's figures are the synthesized template's: resources per unit, alarms, functions, outputs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from templates import as_list, of_type

INFRA_PAGE = Path(__file__).resolve().parents[2] / "docs" / "infra.md"


def page() -> str:
    """docs/infra.md with its lines joined, so a figure may wrap."""
    return " ".join(INFRA_PAGE.read_text(encoding="utf-8").split())


def unit_rows() -> dict[str, tuple[list[str], int]]:
    """The unit table: each unit's construct ids and the resources it claims."""
    rows = {}
    for line in INFRA_PAGE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[3].isdigit():
            rows[cells[0]] = (re.findall(r"`(\w+)`", cells[1]), int(cells[3]))
    return rows


def resources_per_construct(synthesized: Any) -> Counter[str]:
    """CloudFormation resources under each top-level construct of the stack, by construct id."""
    counts: Counter[str] = Counter()
    for child in synthesized.stack.node.children:
        construct_id = re.sub(r"[0-9a-f]{32}$", "", child.node.id)  # CDK's singleton handlers carry a hash
        counts[construct_id] += sum(isinstance(c, cdk.CfnResource) for c in child.node.find_all())
    return +counts


def test_each_unit_holds_the_resources_the_page_says(synthesized: Any) -> None:
    counts = resources_per_construct(synthesized)
    rows = unit_rows()
    claimed = [construct for constructs, _ in rows.values() for construct in constructs]
    assert sorted(claimed) == sorted(counts), f"the table's constructs differ from the stack's: {dict(counts)}"
    actual = {unit: sum(counts[c] for c in constructs) for unit, (constructs, _) in rows.items()}
    assert actual == {unit: figure for unit, (_, figure) in rows.items()}, f"per construct: {dict(counts)}"
    assert sum(actual.values()) == len(synthesized.template["Resources"])


def test_the_totals_are_the_templates(synthesized: Any) -> None:
    template = synthesized.template
    functions = of_type(template, "AWS::Lambda::Function")
    handlers = sorted(p.stem for p in (INFRA_PAGE.parents[1] / "functions").glob("*.py") if p.stem != "__init__")
    alarms = len(of_type(template, "AWS::CloudWatch::Alarm"))
    text = page()
    assert f"holds {len(template['Resources'])} resources" in text
    assert f"{alarms} CloudWatch alarms" in text
    assert f"a dashboard; {alarms} alarms" in text
    assert f"{len(functions)} Lambda functions (the {len(handlers)} in `functions/`" in text
    assert len(functions) == len(handlers) + 1, "the functions and CDK's bucket-notifications handler"
    assert f"{len(template['Outputs'])} outputs" in text


def test_every_output_is_named_and_every_named_output_exists(synthesized: Any) -> None:
    section = page().split("The outputs name", 1)[1].split("## ", 1)[0]
    named = set(re.findall(r"`([A-Z]\w+)`", section))
    assert named == set(synthesized.template["Outputs"]) - {"BootstrapVersion"}


def test_the_signing_key_grants_are_the_ones_iam_md_names(synthesized: Any) -> None:
    iam = " ".join((INFRA_PAGE.parent / "iam.md").read_text(encoding="utf-8").split())
    assert "only the registration Lambda may `kms:Sign`" in iam
    assert "only the approval Lambda and the rollout controller, which deploy its public key" in iam
    granted: dict[str, set[str]] = {"kms:Sign": set(), "kms:GetPublicKey": set()}
    for logical, policy in of_type(synthesized.template, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in set(granted) & set(as_list(statement["Action"])):
                granted[action].add(logical)
    expected = {"kms:Sign": {"TrainingCompleted"}, "kms:GetPublicKey": {"ModelApproved", "RolloutController"}}
    for action, functions in expected.items():  # logical ids hold the function's construct id wherever it sits
        holders = {name for name in functions for logical in granted[action] if name in logical}
        assert holders == functions, f"{action}: {sorted(granted[action])}"
        assert len(granted[action]) == len(functions), f"{action}: {sorted(granted[action])}"
