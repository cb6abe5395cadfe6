"""Rings unit: one IoT thing group per ring of the rollout policy, the targets of the rings' deployments."""

from __future__ import annotations

from aws_cdk import aws_iot as iot
from constructs import Construct

from edgeloop.core.names import ring_group
from edgeloop.core.rollout import RolloutPolicy


class RingGroups(Construct):
    """A flat thing group per ring (not children of the fleet group, so a fleet job never reaches a ring twice).

    edgeloop.cloud.rings.IotRingDirectory puts each fleet device in exactly one of them.
    """

    def __init__(self, scope: Construct, construct_id: str, *, policy: RolloutPolicy) -> None:
        super().__init__(scope, construct_id)
        self.groups = {
            ring.name: iot.CfnThingGroup(
                self,
                f"Ring{index}",
                thing_group_name=ring_group(ring.name),
                thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                    thing_group_description=f"edgeloop rollout ring {index} {ring.name}: {ring.share:.0%} of the fleet"
                ),
            )
            for index, ring in enumerate(policy.rings)
        }
        self.arns = [group.attr_arn for group in self.groups.values()]
        """The ring groups' ARNs in rollout order."""
