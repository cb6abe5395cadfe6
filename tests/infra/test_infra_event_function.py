"""What every cloud handler is: Python 3.11 with the core's settings and a dead-letter queue."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from templates import function_props, logical_id, render

from edgeloop.core.names import TRAINING_OUTPUT_PREFIX
from edgeloop.core.settings import ENV_ROLLOUT_POLICY, ENV_TRAINING_OUTPUT_URI, CloudSettings


@pytest.mark.parametrize("name", ["training_completed", "model_approved"])
def test_handlers_run_python_311_with_the_core_settings_and_a_dead_letter_queue(synthesized: Any, name: str) -> None:
    props = function_props(synthesized.template, f"{name}.handler")
    env = props["Environment"]["Variables"]
    settings = CloudSettings(
        "bucket", "arn:aws:iot:r:1:thinggroup/g", "0.1.0", None, "s3://data/out/", 0.0, "key", rollouts_table="t"
    )
    data_id = logical_id(synthesized, synthesized.stack.storage.data)
    assert props["Runtime"] == "python3.11"
    assert props["FunctionName"] == f"edgeloop-dev-{name.replace('_', '-')}"
    assert set(env) == set(replace(settings, fleet_health_table="h").to_env()) | {ENV_ROLLOUT_POLICY}
    assert env[next(iter(settings.to_env()))] == {"Ref": logical_id(synthesized, synthesized.stack.storage.artifacts)}
    assert render(env[ENV_TRAINING_OUTPUT_URI], {data_id: "data"}) == f"s3://data/{TRAINING_OUTPUT_PREFIX}"
    assert "Fn::GetAtt" in props["DeadLetterConfig"]["TargetArn"]
    assert props["Code"]["S3Key"].endswith(".zip")
