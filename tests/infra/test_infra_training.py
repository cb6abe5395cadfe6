"""The training unit: the role training jobs run as, and the launcher that passes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from templates import as_list, function_props, logical_id, matches, of_type, statements_of_role

from edgeloop.core.names import TRAINING_DATA_PREFIX, TRAINING_OUTPUT_PREFIX
from edgeloop.core.settings import ENV_TRAINING_DATA_URI, ENV_TRAINING_ROLE_ARN, LauncherSettings
from infra.nag import flatten_reference

LAUNCHER = LauncherSettings("digits", "img:1", "arn:aws:iam::1:role/r", "s3://d/training-data/", "s3://d/out/")


def test_the_launcher_starts_only_this_models_jobs_and_passes_only_the_training_role(synthesized: Any) -> None:
    stack = synthesized.stack
    statements = statements_of_role(synthesized.template, logical_id(synthesized, stack.training_launcher.handler.role))
    [create] = [s for s in statements if "sagemaker:CreateTrainingJob" in as_list(s["Action"])]
    assert flatten_reference(create["Resource"]).endswith(":training-job/edgeloop-digits-*")
    [passing] = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert flatten_reference(passing["Resource"]).endswith(":role/edgeloop-dev-training")
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    env = function_props(synthesized.template, "training_launcher.handler")["Environment"]["Variables"]
    assert set(env) == set(LAUNCHER.to_env())
    assert flatten_reference(env[ENV_TRAINING_ROLE_ARN]).endswith(":role/edgeloop-dev-training")
    assert flatten_reference(env[ENV_TRAINING_DATA_URI]).endswith(f"/{TRAINING_DATA_PREFIX}")


def test_the_training_role_reads_training_data_and_writes_training_output_only(synthesized: Any) -> None:
    role = synthesized.template["Resources"][logical_id(synthesized, synthesized.stack.training.role)]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"
    }
    statements = statements_of_role(synthesized.template, logical_id(synthesized, synthesized.stack.training.role))
    s3 = {
        action: flatten_reference(r)
        for s in statements
        for action in as_list(s["Action"])
        if action.startswith("s3:")
        for r in as_list(s["Resource"])
    }
    assert s3["s3:GetObject"].endswith(f"/{TRAINING_DATA_PREFIX}*")
    assert s3["s3:PutObject"].endswith(f"/{TRAINING_OUTPUT_PREFIX}*")


def test_the_retraining_rule_takes_edgeloops_signal_for_this_model_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = logical_id(synthesized, synthesized.stack.training_launcher.handler.function)
    [rule] = [
        r["Properties"]
        for r in of_type(synthesized.template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    signal, other_model, foreign = (
        event("retraining_requested"),
        event("retraining_requested"),
        event("retraining_requested"),
    )
    other_model["detail"]["model_name"] = "wine"
    foreign["source"] = "someone.else"
    assert [matches(rule["EventPattern"], e) for e in (signal, other_model, foreign)] == [True, False, False]
    assert "DeadLetterConfig" in rule["Targets"][0]
