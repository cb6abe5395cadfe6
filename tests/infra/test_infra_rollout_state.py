"""The rollout state unit: tables the adapters can use, encrypted, recoverable and kept."""

from __future__ import annotations

from typing import Any

import pytest
from templates import logical_id, of_type

from edgeloop.cloud.rollout_stores import table_definition
from edgeloop.core.names import FLEET_HEALTH_TABLE, ROLLOUTS_TABLE


@pytest.mark.parametrize("name", [ROLLOUTS_TABLE, FLEET_HEALTH_TABLE])
def test_each_table_has_the_adapters_key_schema_on_demand(synthesized: Any, name: str) -> None:
    [table] = [
        t
        for t in of_type(synthesized.template, "AWS::DynamoDB::Table").values()
        if t["Properties"]["TableName"] == name
    ]
    expected = table_definition(name)
    props = table["Properties"]
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert props["BillingMode"] == expected["BillingMode"]
    assert "GlobalSecondaryIndexes" not in props
    assert "LocalSecondaryIndexes" not in props


def test_tables_are_encrypted_with_the_stacks_key_recoverable_and_kept(synthesized: Any) -> None:
    tables = of_type(synthesized.template, "AWS::DynamoDB::Table")
    key_id = logical_id(synthesized, synthesized.stack.storage.key)
    assert len(tables) == 4  # rollouts, fleet health, the samples catalogue and the retraining state
    for table in tables.values():
        props = table["Properties"]
        assert props["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
        }
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["DeletionProtectionEnabled"] is True
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
