"""The retraining unit: labels feed the catalogue, a schedule runs the trigger, its event reaches the launcher."""

from __future__ import annotations

import json
from typing import Any

from templates import as_list, logical_id, of_type, statements_of_role

from edgeloop.core.events import EDGELOOP_SOURCE, RETRAINING_REQUESTED
from edgeloop.core.names import (
    LABELS_PREFIX,
    LABELS_REJECTED_PREFIX,
    MODELS_PREFIX,
    RETRAINING_TABLE,
    model_package_group,
)
from edgeloop.core.retraining import RetrainingPolicy, evaluate_tick, initial_record
from edgeloop.core.settings import (
    ENV_EVENT_BUS_NAME,
    ENV_FLEET_HEALTH_TABLE,
    ENV_MODEL_NAME,
    ENV_RETRAINING_POLICY,
    ENV_RETRAINING_TABLE,
    ENV_ROLLOUTS_TABLE,
    ENV_SAMPLES_TABLE,
)
from infra.nag import flatten_reference


def _statements(synthesized: Any, function: Any) -> list[dict[str, Any]]:
    """The statements of a handler's inline policies, minus its own logs and dead letters."""
    role_id = logical_id(synthesized, function.role)
    dead_letters = {"Fn::GetAtt": [logical_id(synthesized, function.dead_letters), "Arn"]}
    return [
        s
        for s in statements_of_role(synthesized.template, role_id)
        if not all(a.startswith("logs:") for a in as_list(s["Action"])) and s["Resource"] != dead_letters
    ]


def _granted(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a, flatten_reference(r)) for s in statements for a in as_list(s["Action"]) for r in as_list(s["Resource"])}


def _function(synthesized: Any, function: Any) -> dict[str, Any]:
    props: dict[str, Any] = synthesized.template["Resources"][logical_id(synthesized, function.function)]["Properties"]
    return props


def test_the_trigger_state_table_is_keyed_like_the_others_recoverable_encrypted_and_kept(synthesized: Any) -> None:
    stack = synthesized.stack
    table = synthesized.template["Resources"][logical_id(synthesized, stack.retraining.table)]
    props = table["Properties"]
    assert props["TableName"] == RETRAINING_TABLE
    assert [k["KeyType"] for k in props["KeySchema"]] == ["HASH", "RANGE"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["KMSMasterKeyId"] == {
        "Fn::GetAtt": [logical_id(synthesized, stack.storage.key), "Arn"]
    }
    assert (props["DeletionProtectionEnabled"], table["DeletionPolicy"]) == (True, "Retain")


def test_the_trigger_runs_on_its_schedule_and_reads_the_tables_of_the_core_keys(synthesized: Any) -> None:
    stack = synthesized.stack
    function = _function(synthesized, stack.retraining.trigger)
    assert function["Handler"] == "retraining_trigger.handler"
    env = function["Environment"]["Variables"]
    assert env == {
        ENV_MODEL_NAME: "digits",
        ENV_RETRAINING_POLICY: json.dumps(RetrainingPolicy().to_dict(), sort_keys=True),
        ENV_SAMPLES_TABLE: {"Ref": logical_id(synthesized, stack.samples.table)},
        ENV_RETRAINING_TABLE: {"Ref": logical_id(synthesized, stack.retraining.table)},
        ENV_ROLLOUTS_TABLE: {"Ref": logical_id(synthesized, stack.rollout_state.rollouts)},
        ENV_FLEET_HEALTH_TABLE: {"Ref": logical_id(synthesized, stack.rollout_state.fleet_health)},
        ENV_EVENT_BUS_NAME: "default",
    }
    rule = synthesized.template["Resources"][logical_id(synthesized, stack.retraining.schedule)]["Properties"]
    assert rule["ScheduleExpression"] == "rate(15 minutes)"
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(synthesized, stack.retraining.trigger.function), "Arn"]}
    assert "DeadLetterConfig" in target


def test_the_trigger_role_reads_what_it_decides_on_writes_its_state_and_puts_only_the_retraining_signal(
    synthesized: Any,
) -> None:
    stack = synthesized.stack
    statements = _statements(synthesized, stack.retraining.trigger)
    ids = {
        name: logical_id(synthesized, t)
        for name, t in {
            "state": stack.retraining.table,
            "samples": stack.samples.table,
            "rollouts": stack.rollout_state.rollouts,
            "health": stack.rollout_state.fleet_health,
            "key": stack.storage.key,
        }.items()
    }
    bus = "arn:<AWS::Partition>:events:us-east-1:<AWS::AccountId>:event-bus/default"
    assert _granted(statements) == {
        ("dynamodb:GetItem", f"<{ids['state']}.Arn>"),
        ("dynamodb:PutItem", f"<{ids['state']}.Arn>"),
        ("dynamodb:GetItem", f"<{ids['samples']}.Arn>"),
        ("dynamodb:GetItem", f"<{ids['rollouts']}.Arn>"),
        ("dynamodb:Query", f"<{ids['health']}.Arn>"),
        *{(a, f"<{ids['key']}.Arn>") for a in ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")},
        ("events:PutEvents", bus),
    }
    [put] = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert put["Condition"] == {
        "StringEquals": {"events:source": EDGELOOP_SOURCE, "events:detail-type": RETRAINING_REQUESTED}
    }


def test_the_event_the_trigger_puts_is_one_the_launchers_rule_delivers(synthesized: Any) -> None:
    stack = synthesized.stack
    launcher = {"Fn::GetAtt": [logical_id(synthesized, stack.training_launcher.handler.function), "Arn"]}
    [pattern] = [
        r["Properties"]["EventPattern"]
        for r in of_type(synthesized.template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == launcher and "EventPattern" in r["Properties"]
    ]
    tick = evaluate_tick(
        initial_record(stack.config.model_name), RetrainingPolicy(), now=0, label_total=500, live_version=2,
        drift_score=None,
    )  # fmt: skip
    assert tick.entry is not None
    detail = json.loads(tick.entry["Detail"])
    assert tick.entry["Source"] in pattern["source"]
    assert tick.entry["DetailType"] in pattern["detail-type"]
    assert detail["model_name"] in pattern["detail"]["model_name"]


def test_the_label_ingest_runs_on_label_objects_only_and_holds_exactly_what_it_calls(synthesized: Any) -> None:
    stack = synthesized.stack
    ingest = stack.retraining.label_ingest
    function_arn = {"Fn::GetAtt": [logical_id(synthesized, ingest.function), "Arn"]}
    [notifications] = of_type(synthesized.template, "Custom::S3BucketNotifications").values()
    assert notifications["Properties"]["BucketName"] == {"Ref": logical_id(synthesized, stack.storage.samples)}
    configs = notifications["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    [config] = [c for c in configs if c["LambdaFunctionArn"] == function_arn]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": LABELS_PREFIX}]
    assert not LABELS_REJECTED_PREFIX.startswith(LABELS_PREFIX), "a rejection must not re-trigger the ingest"
    function = _function(synthesized, ingest)
    assert function["Handler"] == "label_ingest.handler"
    bucket, key, table, retraining, artifacts = (
        logical_id(synthesized, c)
        for c in (
            stack.storage.samples, stack.storage.key, stack.samples.table, stack.retraining.table,
            stack.storage.artifacts,
        )
    )  # fmt: skip
    group = model_package_group(stack.retraining.settings.model_name)
    packages = f"arn:<AWS::Partition>:sagemaker:us-east-1:<AWS::AccountId>:model-package/{group}/*"
    assert function["Environment"]["Variables"] == {
        ENV_SAMPLES_TABLE: {"Ref": table},
        ENV_RETRAINING_TABLE: {"Ref": retraining},
    }
    assert _granted(_statements(synthesized, ingest)) == {
        ("s3:GetObject", f"<{bucket}.Arn>/{LABELS_PREFIX}*"),
        ("s3:PutObject", f"<{bucket}.Arn>/{LABELS_REJECTED_PREFIX}*"),
        ("dynamodb:GetItem", f"<{table}.Arn>"),
        ("dynamodb:UpdateItem", f"<{table}.Arn>"),
        ("dynamodb:GetItem", f"<{retraining}.Arn>"),  # the live version (trigger item), the detector item
        ("dynamodb:PutItem", f"<{retraining}.Arn>"),  # the detector item only over the revision it read
        *{(a, f"<{key}.Arn>") for a in ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")},
        ("sagemaker:DescribeModelPackage", packages),  # the live version's record: where its manifest is
        ("sagemaker:ListModelPackages", "*"),
        ("s3:GetObject", f"<{artifacts}.Arn>/{MODELS_PREFIX}*"),  # its manifest: the reliability table
    }


def test_operators_find_the_labels_prefix_and_the_trigger(synthesized: Any) -> None:
    outputs = synthesized.template["Outputs"]
    assert {"LabelsUri", "RetrainingTableName", "RetrainingTriggerFunctionName"} <= set(outputs)
    assert outputs["LabelsUri"]["Value"]["Fn::Join"][1][-1] == f"/{LABELS_PREFIX}"
