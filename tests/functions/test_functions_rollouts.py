"""The health_ingest and rollout_controller handlers: real-shaped events through parse -> core -> adapters."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from support import FAKE_ONNX, FakeClock, manifest_for

from edgeloop.cloud.fleet import MemoryFleetControl
from edgeloop.cloud.registry import MemoryRegistry
from edgeloop.cloud.rollout_control import RolloutContext
from edgeloop.cloud.rollout_stores import MemoryFleetHealthStore, MemoryRolloutStore
from edgeloop.core.errors import InvalidTransitionError, ValidationError
from edgeloop.core.events import RolloutRequest
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.registry import ApprovalStatus
from edgeloop.core.rollout import Ring, RolloutPolicy
from edgeloop.core.settings import CloudSettings
from functions import health_ingest, rollout_controller

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
POLICY = RolloutPolicy(rings=(Ring("canary", 0.5, 10), Ring("broad", 0.5, 10)))


class FixedRings:
    def ring_of(self, thing_name: str) -> int:
        return 0


@pytest.fixture
def ctx() -> RolloutContext:
    registry, fleet = MemoryRegistry(), MemoryFleetControl()
    registry.ensure_group("digits")
    record = registry.register(
        manifest_for(FAKE_ONNX), training_job="j1", artifact_uri="s3://a/m", manifest_uri="s3://a/f",
        approval=ApprovalStatus.APPROVED,
    )  # fmt: skip
    fleet.create_component_version({"ComponentName": record.component_name, "ComponentVersion": "1.0.0"})
    fleet.create_component_version({"ComponentName": INFERENCE_COMPONENT, "ComponentVersion": "0.1.0"})
    settings = replace(CloudSettings("b", GROUP_ARN, "0.1.0", None, "s3://d/o/"), rollout_policy=POLICY)
    return RolloutContext(MemoryRolloutStore(), MemoryFleetHealthStore(), registry, fleet, settings, FakeClock())


def test_a_health_document_is_counted_once(ctx: RolloutContext, event: Any) -> None:
    deps = {"ctx": ctx, "rings": FixedRings()}
    document = event("health_shadow_document")
    assert health_ingest.handle(document, deps)["status"] == "counted"
    assert health_ingest.handle(document, deps)["status"] == "skipped"
    [ring] = ctx.health.aggregates("digits", 1).values()
    assert (ring.devices_on_version, ring.inferences) == (1, 1200)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.pop("version"), "event.version"),
        (lambda e: e["reported"].update(model_state="exploded"), "health.model_state"),
        (lambda e: e.update(thing_name="not a thing"), "thing_name"),
        (lambda e: e["reported"].update(thing_name="edge-dev-2"), "health.thing_name"),
    ],
)
def test_a_document_that_breaks_the_schema_is_refused_naming_the_field(
    ctx: RolloutContext, event: Any, change: Any, field: str
) -> None:
    document = event("health_shadow_document")
    change(document)
    result = health_ingest.handle(document, {"ctx": ctx, "rings": FixedRings()})
    assert result["status"] == "refused"
    assert field in result["reason"]
    assert ctx.health.aggregates("digits", 1) == {}


def test_the_controller_starts_steps_and_takes_commands(ctx: RolloutContext, event: Any) -> None:
    deps = {"ctx": ctx, "model_name": "digits"}
    started = rollout_controller.handle({"command": "start", "model_name": "digits", "version": 1}, deps)
    assert (started["status"], started["ring"], started["decision"]) == ("in_ring", 0, "promote")
    waiting = rollout_controller.handle(event("rollout_schedule"), deps)
    assert (waiting["status"], waiting["decision"]) == ("in_ring", "wait")
    paused = rollout_controller.handle({"command": "pause", "reason": "INC-1"}, deps)
    assert paused["status"] == "halted"
    with pytest.raises(InvalidTransitionError):
        rollout_controller.handle({"command": "pause"}, deps)


def test_an_idle_model_says_so(ctx: RolloutContext, event: Any) -> None:
    assert (
        rollout_controller.handle(event("rollout_schedule"), {"ctx": ctx, "model_name": "digits"})["status"] == "idle"
    )


@pytest.mark.parametrize(
    ("request_event", "field"),
    [
        ({"command": "launch"}, "event.command"),
        ({"command": "start"}, "event.version"),
        ({"command": "start", "version": 0}, "event.version"),
        ({"command": "step", "colour": "red"}, "event"),
    ],
)
def test_bad_controller_requests_name_the_field(request_event: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RolloutRequest.from_event(request_event, "digits")
    assert info.value.field == field
