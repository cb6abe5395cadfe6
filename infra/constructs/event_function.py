"""One handler from functions/ behind one EventBridge rule, with its own role, log group and dead letters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from edgeloop.core.settings import ENV_ROLLOUT_POLICY, CloudSettings
from edgeloop.packaging import stage_lambda_asset
from infra.nag import grant

RUNTIME = lambda_.Runtime.PYTHON_3_11
HANDLER_ENTRY = "handler"
RETRY_ATTEMPTS = 2


class EventFunction(Construct):
    """A Lambda fed by asynchronous events; events it cannot handle after retries land in its queue.

    With an event_pattern, an EventBridge rule delivers to it; without one, its events come another way
    (a schedule added with add_rule, an IoT rule invoking it), under the same retries and dead letters.
    The role starts empty apart from its own logs and queue: the construct that owns it grants the rest.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        asset_dir: Path,
        resource_prefix: str,
        environment: Mapping[str, str],
        event_pattern: events.EventPattern | None,
        description: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        cdk.Validations.of(self.dead_letters).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the function and its rule.",
            )
        )
        self.log_group = logs.LogGroup(self, "Logs")
        # The config validated the days against CloudWatch's periods; CDK's enum has no int constructor.
        cast(logs.CfnLogGroup, self.log_group.node.default_child).retention_in_days = log_retention_days
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{resource_prefix} {function_name}: only what the handler calls",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=f"{resource_prefix}-{function_name.replace('_', '-')}",
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"{function_name}.{HANDLER_ENTRY}",
            code=lambda_.Code.from_asset(str(asset_dir)),
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
            memory_size=512,
            timeout=cdk.Duration.minutes(2),
            retry_attempts=RETRY_ATTEMPTS,
            dead_letter_queue=self.dead_letters,
        )
        self.log_group.grant_write(self.role)
        cdk.Validations.of(self.function).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.11 is the version edgeloop supports and tests; upgrade with the package.",
            )
        )
        self.rule = (
            None
            if event_pattern is None
            else self.add_rule("Rule", description=description, event_pattern=event_pattern)
        )

    def add_rule(
        self,
        construct_id: str,
        *,
        description: str,
        event_pattern: events.EventPattern | None = None,
        schedule: events.Schedule | None = None,
    ) -> events.Rule:
        """Another rule (a pattern or a schedule) delivering to the function, with the same retries and dead letters."""
        return events.Rule(
            self,
            construct_id,
            description=description,
            event_pattern=event_pattern,
            schedule=schedule,
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.dead_letters,
                    retry_attempts=RETRY_ATTEMPTS,
                    max_event_age=cdk.Duration.hours(6),
                )
            ],
        )

    def allow(self, *statements: iam.PolicyStatement, wildcard_reason: str | None = None) -> None:
        """Grant the handler exactly these statements; any wildcard in them needs its reason."""
        grant(self.role, *statements, wildcard_reason=wildcard_reason)


@dataclass(frozen=True, kw_only=True)
class FunctionDefaults:
    """What every construct's functions share: where their code is staged, their name prefix, how long logs stay."""

    functions_dir: Path
    resource_prefix: str
    log_retention_days: int

    def build(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        environment: Mapping[str, str],
        event_pattern: events.EventPattern | None,
        description: str,
    ) -> EventFunction:
        """The handler functions/<name>.py, staged with the core it imports, as an EventFunction in scope."""
        return EventFunction(
            scope,
            construct_id,
            function_name=name,
            asset_dir=stage_lambda_asset(name, self.functions_dir),
            resource_prefix=self.resource_prefix,
            environment=environment,
            event_pattern=event_pattern,
            description=description,
            log_retention_days=self.log_retention_days,
        )


def handler_env(settings: CloudSettings) -> dict[str, str]:
    """The cloud handlers' environment, with the rollout policy always spelled out (the ring groups follow it)."""
    return {**settings.to_env(), ENV_ROLLOUT_POLICY: json.dumps(settings.rollout_policy.to_dict(), sort_keys=True)}
