"""infra.nag: a grant acknowledges exactly the wildcards it declares, so any other one still fails synth."""

from __future__ import annotations

import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from infra.nag import flatten_reference, grant

REASON = "Objects below models/ are named by their content hash, unknown at deploy time."


def _app_with_role(outdir: Path) -> tuple[cdk.App, iam.Role, iam.Role]:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "NagProbe", env=cdk.Environment(account="123456789012", region="us-east-1"))
    role = iam.Role(stack, "Probe", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    other = iam.Role(stack, "Other", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, role, other


def _declared(other: iam.Role) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["s3:GetObject"], resources=["arn:aws:s3:::bucket/models/*", f"{other.role_arn}/*"]
    )


def test_declared_wildcards_pass_cdk_nag(tmp_path: Path) -> None:
    app, role, other = _app_with_role(tmp_path)
    grant(role, _declared(other), wildcard_reason=REASON)
    app.synth()


def test_an_undeclared_wildcard_still_fails_cdk_nag(tmp_path: Path) -> None:
    app, role, other = _app_with_role(tmp_path)
    grant(role, _declared(other), wildcard_reason=REASON)
    grant(role, iam.PolicyStatement(actions=["s3:Get*"], resources=["arn:aws:s3:::bucket/exact"]))
    with pytest.raises(RuntimeError, match="ValidationFailed") as raised:
        app.synth()
    assert re.findall(r"AwsSolutions-\w+\[[^\]]*\]", str(raised.value)) == ["AwsSolutions-IAM5[Action::s3:Get*]"]


@pytest.mark.parametrize(
    ("reference", "name"),
    [
        ("arn:aws:s3:::b/*", "arn:aws:s3:::b/*"),
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket1", "Arn"]}, "/models/*"]]}, "<Bucket1.Arn>/models/*"),
        ({"Fn::Join": [":", ["arn", {"Ref": "AWS::Partition"}, "x"]]}, "arn:<AWS::Partition>:x"),
        ({"Fn::Sub": "assets-${AWS::AccountId}"}, "assets-<AWS::AccountId>"),
        ({"Fn::If": ["C", "a", "b"]}, '{"Fn::If":["C","a","b"]}'),
    ],
)
def test_references_are_named_as_cdk_nag_names_them(reference: object, name: str) -> None:
    assert flatten_reference(reference) == name
