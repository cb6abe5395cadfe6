"""Retraining unit: the label ingest, the trigger's state table, and the trigger on its schedule.

Labels arrive as objects under labels/ in the samples bucket (the labelling tool writes them); the
label ingest records each in the sample catalogue. On every tick the trigger reads the label count,
the last-known-good version and its fleet drift, and puts at most one Retraining Requested event on
the default bus, where the training launcher's rule (infra/stacks) already takes it. The stack wires
the bucket's notifications and grants what each function reads and writes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from constructs import Construct

from edgeloop.core.names import RETRAINING_TABLE
from edgeloop.core.settings import ENV_SAMPLES_TABLE, TriggerSettings
from infra.constructs.event_function import EventFunction
from infra.constructs.rollout_state import state_table

LABEL_INGEST = "label_ingest"
RETRAINING_TRIGGER = "retraining_trigger"


class Retraining(Construct):
    """Labels in, the retraining decision out: two functions and the table of each model's trigger state."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        settings: TriggerSettings,
        trigger_asset_dir: Path,
        label_ingest_asset_dir: Path,
        resource_prefix: str,
        rate_minutes: int,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = state_table(self, "State", RETRAINING_TABLE, key)
        """One item per model: the trigger's record, written only over the revision it read."""
        self.settings = replace(settings, retraining_table=self.table.table_name)
        self.trigger = EventFunction(
            self,
            "Trigger",
            function_name=RETRAINING_TRIGGER,
            asset_dir=trigger_asset_dir,
            resource_prefix=resource_prefix,
            environment=self.settings.to_env(),
            event_pattern=None,
            description="Decide on a schedule whether the model retrains (new labels, sustained drift); say so once",
            log_retention_days=log_retention_days,
        )
        self.schedule = self.trigger.add_rule(
            "Schedule",
            description=f"Evaluate the retraining trigger of {settings.model_name} on a schedule",
            schedule=events.Schedule.rate(cdk.Duration.minutes(rate_minutes)),
        )
        self.label_ingest = EventFunction(
            self,
            "LabelIngest",
            function_name=LABEL_INGEST,
            asset_dir=label_ingest_asset_dir,
            resource_prefix=resource_prefix,
            environment={ENV_SAMPLES_TABLE: settings.samples_table},
            event_pattern=None,
            description="Record each new label object in the sample catalogue, each sample counted once",
            log_retention_days=log_retention_days,
        )
