"""The rings unit: one flat thing group per ring of the rollout policy, whichever policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from templates import of_type

from edgeloop.core.names import ring_group
from edgeloop.core.rollout import DEFAULT_POLICY, Ring, RolloutPolicy
from edgeloop.core.settings import ENV_ROLLOUT_POLICY
from infra import config as cfg


def test_one_ring_thing_group_per_ring_of_the_policy(synthesized: Any) -> None:
    groups = {g["Properties"]["ThingGroupName"] for g in of_type(synthesized.template, "AWS::IoT::ThingGroup").values()}
    rings = {ring_group(name) for name in DEFAULT_POLICY.ring_names}
    assert groups - {synthesized.stack.fleet.thing_group.thing_group_name} == rings
    assert all(
        "ParentGroupName" not in g["Properties"] for g in of_type(synthesized.template, "AWS::IoT::ThingGroup").values()
    )


PILOT = RolloutPolicy(rings=(Ring("pilot", 0.1, bake_s=60), Ring("all", 0.9, bake_s=60)), ring_timeout_s=600)


@pytest.fixture(scope="module")
def two_rings(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Another policy (as -c passes it, JSON text) and controller rate, synthesized with cdk-nag on."""
    from infra.app import build_app

    root = tmp_path_factory.mktemp("rings")
    context = {
        cfg.CONTEXT_ENV_NAME: "lab",
        cfg.CONTEXT_ROLLOUT_POLICY: json.dumps(PILOT.to_dict()),
        cfg.CONTEXT_ROLLOUT_CONTROLLER_RATE: "1",
    }
    app, stack = build_app(staging_dir=root / "staging", context=context, outdir=str(Path(root) / "out"))
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def test_another_policy_makes_its_own_ring_groups_env_and_schedule(two_rings: dict[str, Any]) -> None:
    groups = {g["Properties"]["ThingGroupName"] for g in of_type(two_rings, "AWS::IoT::ThingGroup").values()}
    envs = [
        f["Properties"]["Environment"]["Variables"]
        for f in of_type(two_rings, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"]
        in {f"{h}.handler" for h in ("health_ingest", "model_approved", "rollout_controller")}
    ]
    schedules = {r["Properties"].get("ScheduleExpression") for r in of_type(two_rings, "AWS::Events::Rule").values()}
    assert groups == {"edgeloop-fleet", ring_group("pilot"), ring_group("all")}
    assert len(envs) == 3
    assert all(RolloutPolicy.from_dict(json.loads(env[ENV_ROLLOUT_POLICY])) == PILOT for env in envs)
    assert "rate(1 minute)" in schedules
