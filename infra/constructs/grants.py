"""IAM statements several constructs grant, written once: table items, a key through one service, registry reads."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

KMS_VIA_DYNAMODB_READ = ("kms:Decrypt", "kms:DescribeKey")
KMS_VIA_DYNAMODB_WRITE = (*KMS_VIA_DYNAMODB_READ, "kms:Encrypt", "kms:GenerateDataKey")
"""What DynamoDB asks KMS for with the caller's rights when it reads and writes items under the tables' key."""
KMS_VIA_S3 = ("kms:Decrypt", "kms:GenerateDataKey")
"""What S3 asks KMS for with the caller's rights when it reads and writes objects under the buckets' key."""


def table_statement(table: dynamodb.ITable, actions: tuple[str, ...]) -> iam.PolicyStatement:
    """Item-level DynamoDB actions on one table (no index exists, so none is granted)."""
    return iam.PolicyStatement(actions=[f"dynamodb:{action}" for action in actions], resources=[table.table_arn])


def key_via(key: kms.IKey, service: str, actions: tuple[str, ...]) -> iam.PolicyStatement:
    """The key, usable only through one AWS service (which encrypts and decrypts with the caller's rights)."""
    stack = cdk.Stack.of(key)
    return iam.PolicyStatement(
        actions=list(actions),
        resources=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"{service}.{stack.region}.{stack.url_suffix}"}},
    )


def list_model_packages() -> iam.PolicyStatement:
    """ListModelPackages has no resource-level permission; it is read-only and finds versions by number."""
    return iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"])


def read_model_packages(package_arns: str) -> iam.PolicyStatement:
    """Describe the group's versions (the registry record lives in their customer metadata)."""
    return iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[package_arns])


def component_arns(stack: cdk.Stack, component: str) -> list[str]:
    """A component and all its versions (CreateComponentVersion acts on the first, reads on the second)."""
    base = stack.format_arn(
        service="greengrass",
        resource="components",
        resource_name=component,
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
    return [base, f"{base}:versions:*"]
