"""The registry unit: the model package group, and training_completed registering into it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from templates import as_list, logical_id, matches, of_type, rule_for, statements_of_role

from edgeloop.core.events import SAGEMAKER_SOURCE, TRAINING_JOB_COMPLETED, TRAINING_JOB_STATE_CHANGE
from edgeloop.core.names import TRAINING_OUTPUT_PREFIX, model_component_name, model_package_group
from infra.nag import flatten_reference


def test_model_package_group_is_named_by_the_core(synthesized: Any) -> None:
    [group] = of_type(synthesized.template, "AWS::SageMaker::ModelPackageGroup").values()
    assert group["Properties"]["ModelPackageGroupName"] == model_package_group("digits")
    assert group["DeletionPolicy"] == "Retain"


def test_training_completed_rule_takes_completed_jobs_writing_to_our_training_output_only(
    synthesized: Any, event: Callable[[str], dict[str, Any]]
) -> None:
    function_id = logical_id(synthesized, synthesized.stack.training_completed.handler.function)
    data_id = logical_id(synthesized, synthesized.stack.storage.data)
    rule = rule_for(synthesized.template, function_id)
    output_prefix = {"Fn::Join": ["", ["s3://", {"Ref": data_id}, f"/{TRAINING_OUTPUT_PREFIX}"]]}
    assert rule["EventPattern"] == {
        "source": [SAGEMAKER_SOURCE],
        "detail-type": [TRAINING_JOB_STATE_CHANGE],
        "detail": {
            "TrainingJobStatus": [TRAINING_JOB_COMPLETED],
            "ModelArtifacts": {"S3ModelArtifacts": [{"prefix": output_prefix}]},
        },
    }
    deployed = {data_id: "edgeloop-data"}  # the bucket the sample events name
    completed = event("training_job_completed")
    elsewhere = event("training_job_completed")
    elsewhere["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = "s3://edgeloop-data/other-team/job/output/model.tar.gz"
    other_bucket = event("training_job_completed")
    other_bucket["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = "s3://someone-else/training-output/j/model.tar.gz"
    results = [matches(rule["EventPattern"], e, deployed) for e in (completed, elsewhere, other_bucket)]
    assert results == [True, False, False]
    assert not matches(rule["EventPattern"], event("training_job_failed"), deployed)
    assert "DeadLetterConfig" in rule["Targets"][0]


def test_training_completed_may_create_only_its_models_component(synthesized: Any) -> None:
    role_id = logical_id(synthesized, synthesized.stack.training_completed.handler.role)
    resources = [
        flatten_reference(r)
        for s in statements_of_role(synthesized.template, role_id)
        if "greengrass:CreateComponentVersion" in as_list(s["Action"])
        for r in as_list(s["Resource"])
    ]
    component = model_component_name("digits")
    assert resources
    assert all(r.endswith((f":components:{component}", f":components:{component}:versions:*")) for r in resources)
