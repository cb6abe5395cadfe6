"""`edgeloop models list|show|approve|reject|train-remote`: the model registry from a workstation.

It talks to the configured AWS: `--endpoint-url`, else `AWS_ENDPOINT_URL` (boto3 reads it itself, so a
local stack's moto server is reached the same way), else real AWS with the usual credential chain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeloop.cli.target import version_number, with_target
from edgeloop.core.errors import InvalidTransitionError, UsageError
from edgeloop.core.names import DEFAULT_MODEL_NAME, validate_model_name
from edgeloop.core.registry import ApprovalStatus, RegistryRecord
from edgeloop.core.settings import ENV_MODEL_NAME
from edgeloop.core.training_jobs import MODEL_NAME_HYPERPARAMETER, TRAINING_MODULE

SAGEMAKER_EXTRA = "sagemaker"
"""The optional dependency group that brings the sagemaker SDK (about 1 GB), for train-remote only."""
_LIST_COLUMNS = ("VERSION", "STATUS", "ACCURACY", "SIGNED", "PARENT", "TRAINING JOB", "GATE")


def register(commands: Any) -> None:
    """Add `models` and its subcommands."""
    parser = commands.add_parser("models", help="list, inspect, approve and reject registered model versions")
    sub = parser.add_subparsers(dest="models_command", required=True, parser_class=type(parser))
    listing = with_target(sub.add_parser("list", help="every version with its status, accuracy and gate"))
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(run=run_list)
    show = with_target(sub.add_parser("show", help="one version's metadata, lineage and manifest URI"))
    show.add_argument("version", type=version_number)
    show.set_defaults(run=run_show)
    for name, status in (("approve", ApprovalStatus.APPROVED), ("reject", ApprovalStatus.REJECTED)):
        command = with_target(sub.add_parser(name, help=f"set a version to {status.value}, with a reason"))
        command.add_argument("version", type=version_number)
        command.add_argument("--reason", required=True, help="recorded as the version's ApprovalDescription")
        command.set_defaults(run=run_set_approval, approval=status)
    remote = sub.add_parser("train-remote", help=f"submit training with the sagemaker SDK ([{SAGEMAKER_EXTRA}] extra)")
    _remote_arguments(remote)
    remote.set_defaults(run=run_train_remote)


def _registry(args: argparse.Namespace) -> Any:
    """A SageMakerRegistry on the configured endpoint; a missing region is a usage error, not a traceback."""
    import boto3
    from botocore.exceptions import NoRegionError

    from edgeloop.cloud.registry import SageMakerRegistry

    validate_model_name(args.model)
    try:
        client = boto3.client("sagemaker", endpoint_url=args.endpoint_url, region_name=args.region)
    except NoRegionError as exc:
        raise UsageError("--region", "no AWS region is configured; pass --region or set AWS_DEFAULT_REGION") from exc
    return SageMakerRegistry(client)


def run_list(args: argparse.Namespace) -> int:
    """Print every version of the model, oldest first."""
    records = _registry(args).versions(args.model)
    if args.json:
        print(json.dumps([_as_dict(r) for r in records], indent=2))
        return 0
    print(format_table(records))
    return 0


def format_table(records: Sequence[RegistryRecord]) -> str:
    """The `models list` table: one row per version, columns padded to their widest cell."""
    rows = [_LIST_COLUMNS] + [
        (
            str(r.version),
            r.approval.value,
            f"{r.holdout_accuracy:.4f}",
            "yes" if r.signed else "no",
            "-" if r.parent_version is None else str(r.parent_version),
            r.training_job,
            r.gate or "-",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_LIST_COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + ("" if records else "\n(no versions registered yet)")


def run_show(args: argparse.Namespace) -> int:
    """Print one version's record, field by field."""
    record = _registry(args).get(args.model, args.version)
    for key, value in _as_dict(record).items():
        print(f"{key + ':':<22}{'-' if value in (None, '') else value}")
    return 0


def _as_dict(record: RegistryRecord) -> dict[str, Any]:
    return {
        "model": record.model_name,
        "version": record.version,
        "status": record.approval.value,
        "holdout_accuracy": record.holdout_accuracy,
        "gate": record.gate,
        "deployable": record.deployable,
        "parent_version": record.parent_version,
        "training_job": record.training_job,
        "manifest_uri": record.manifest_uri,
        "signature_uri": record.signature_uri,
        "artifact_uri": record.artifact_uri,
        "sha256": record.sha256,
        "component": f"{record.component_name} {record.component_version}",
        "decision": record.decision,
        "approval_description": record.approval_description,
        "package_arn": record.package_arn,
    }


def run_set_approval(args: argparse.Namespace) -> int:
    """Approve or reject one version; a version whose accuracy gate failed can never be approved."""
    registry = _registry(args)
    record = registry.get(args.model, args.version)
    if args.approval is ApprovalStatus.APPROVED and not record.deployable:
        raise InvalidTransitionError(
            f"{record.model_name} v{record.version} did not pass its accuracy gate ({record.gate}); "
            "it can never be approved"
        )
    if not args.reason.strip():
        raise UsageError("--reason", "must say why")
    updated = registry.set_approval(args.model, args.version, args.approval, args.reason.strip())
    print(f"{updated.model_name} v{updated.version}: {record.approval.value} -> {updated.approval.value}")
    return 0


def _remote_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=os.environ.get(ENV_MODEL_NAME) or DEFAULT_MODEL_NAME)
    parser.add_argument("--image", required=True, help="training image URI (with edgeloop[training] installed)")
    parser.add_argument("--role", required=True, help="SageMaker execution role ARN (stack output TrainingRoleArn)")
    parser.add_argument("--output", required=True, help="s3:// training-output prefix (stack output TrainingOutputUri)")
    parser.add_argument("--instance-type", default="ml.m5.large")
    parser.add_argument("--source-dir", default=".", help="folder uploaded as the job's code (default: this checkout)")
    parser.add_argument("--hyperparameter", "-p", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--dry-run", action="store_true", help="print the ModelTrainer arguments, submit nothing")


def model_trainer_arguments(
    *,
    model_name: str,
    image: str,
    role: str,
    output: str,
    instance_type: str,
    source_dir: Path,
    hyperparameters: Sequence[str],
) -> dict[str, Any]:
    """Plain ModelTrainer arguments (the SDK objects are built from them), checked without the SDK."""
    validate_model_name(model_name)
    if not role.startswith("arn:") or ":role/" not in role:
        raise UsageError("--role", f"{role!r} is not an IAM role ARN")
    if not output.startswith("s3://"):
        raise UsageError("--output", f"{output!r} is not an s3:// URI")
    if not instance_type.startswith("ml."):
        raise UsageError("--instance-type", f"{instance_type!r} is not a SageMaker instance type")
    if not source_dir.is_dir():
        raise UsageError("--source-dir", f"{source_dir} is not a folder")
    return {
        "training_image": image,
        "role": role,
        "base_job_name": f"edgeloop-{model_name}",
        "source_code": {"source_dir": str(source_dir), "command": f"python -m {TRAINING_MODULE}"},
        "compute": {"instance_type": instance_type, "instance_count": 1},
        "output_data_config": {"s3_output_path": output.rstrip("/")},
        "hyperparameters": {**_pairs(hyperparameters), MODEL_NAME_HYPERPARAMETER: model_name},
    }


def _pairs(items: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("--hyperparameter", f"{item!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def run_train_remote(args: argparse.Namespace) -> int:
    """Build the arguments, then (unless --dry-run) submit through sagemaker.train.ModelTrainer."""
    arguments = model_trainer_arguments(
        model_name=args.model,
        image=args.image,
        role=args.role,
        output=args.output,
        instance_type=args.instance_type,
        source_dir=Path(args.source_dir),
        hyperparameters=args.hyperparameter,
    )
    if args.dry_run:
        print(json.dumps(arguments, indent=2, sort_keys=True))
        return 0
    trainer = build_model_trainer(arguments)
    trainer.train(wait=False)
    print(f"submitted a training job named {arguments['base_job_name']}-<timestamp>", file=sys.stderr)
    return 0


def build_model_trainer(arguments: Mapping[str, Any]) -> Any:
    """The SDK's ModelTrainer, imported only here: without the extra, say how to get it."""
    try:
        from sagemaker.train import ModelTrainer
        from sagemaker.train.configs import Compute, OutputDataConfig, SourceCode
    except ImportError as exc:
        raise UsageError(
            "train-remote", f"needs the sagemaker SDK: pip install 'edgeloop[{SAGEMAKER_EXTRA}]' ({exc})"
        ) from exc
    return ModelTrainer(
        training_image=arguments["training_image"],
        role=arguments["role"],
        base_job_name=arguments["base_job_name"],
        source_code=SourceCode(**arguments["source_code"]),
        compute=Compute(**arguments["compute"]),
        output_data_config=OutputDataConfig(**arguments["output_data_config"]),
        hyperparameters=dict(arguments["hyperparameters"]),
    )
