"""The logical ids of everything that holds state: a refactor that renames one would replace it on deploy."""

from __future__ import annotations

from typing import Any

from templates import of_type

STATEFUL = {
    "AWS::DynamoDB::Table": {
        "RetrainingState05F376BD",
        "RolloutStateFleetHealth7365C9BB",
        "RolloutStateRollouts6C9A545D",
        "SamplesCatalogueC917B329",
    },
    "AWS::S3::Bucket": {
        "StorageAccessLogs96FB524C",
        "StorageArtifacts08431D1F",
        "StorageData6BB23F4E",
        "StorageSamples9ADD15B8",
    },
    "AWS::KMS::Key": {"SigningKey70710D41", "StorageKeyBAA9457B"},
    "AWS::SQS::Queue": {
        "HealthIngestFailedDeliveries6924914A",
        "HealthIngestHandlerDeadLettersEE42E18D",
        "ModelApprovedDeadLettersDF0CF09B",
        "ResultsFailedDeliveriesAF91A49C",
        "RetrainingLabelIngestDeadLetters2828FF60",
        "RetrainingTriggerDeadLettersF887E8F2",
        "RolloutControllerDeadLetters54226AF1",
        "SamplesFailedDeliveriesBA07DDEF",
        "SamplesIngestDeadLetters915A1720",
        "SamplesLabellingA330736C",
        "SamplesLabellingDeadLetters0601CABF",
        "TrainingCompletedDeadLetters4EE505C6",
        "TrainingLauncherDeadLetters4C55F76B",
    },
    "AWS::Logs::LogGroup": {
        "HealthIngestHandlerLogs519F6FB0",
        "ModelApprovedLogsB4934CEE",
        "RetrainingLabelIngestLogs79FE6BCE",
        "RetrainingTriggerLogs8A032862",
        "RolloutControllerLogs4BF2518C",
        "SamplesIngestLogsA55ECA27",
        "TrainingCompletedLogsDE4D7549",
        "TrainingLauncherLogsE8B4DC32",
    },
    # Named account-wide: a replacement would fail on the name the old one still holds.
    "AWS::SageMaker::ModelPackageGroup": {"RegistryGroupF9A457C4"},
    "AWS::IoT::ThingGroup": {
        "FleetThingGroupB6305FD9",
        "RingsRing009AF30C3",
        "RingsRing1973F84CC",
        "RingsRing261DC2A03",
    },
}
"""Written out, not derived: CDK derives a logical id from the construct path, so moving or renaming a
construct changes it, and CloudFormation then deletes the old table, bucket, key, queue or log group
(with what it holds) and creates an empty one. A change here must be a deliberate migration."""


def test_every_stateful_resource_keeps_its_logical_id(synthesized: Any) -> None:
    found = {kind: set(of_type(synthesized.template, kind)) for kind in STATEFUL}
    assert found == STATEFUL
