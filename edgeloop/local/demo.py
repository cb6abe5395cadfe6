"""`edgeloop demo`: the whole loop on one machine, from training to health read back from the cloud."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.core.errors import EdgeloopError, UsageError
from edgeloop.core.events import SAGEMAKER_SOURCE, TRAINING_JOB_STATE_CHANGE
from edgeloop.core.health import HealthReport
from edgeloop.core.names import (
    HEALTH_SHADOW,
    INFERENCE_COMPONENT,
    TRAINING_OUTPUT_PREFIX,
)
from edgeloop.core.registry import ApprovalStatus
from edgeloop.local.greengrass import ExecutionStatus
from edgeloop.local.stack import ACCOUNT, REGION, LocalStack
from edgeloop.training import TrainingConfig, TrainingResult, train

MAX_DEVICES = 100
SETTLE_TIMEOUT_S = 120.0
SUMMARY_FILE = "summary.json"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoOptions:
    """What the user asked for."""

    devices: int = 5
    out: Path = Path("edgeloop-demo")
    model_name: str = "digits"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.devices <= MAX_DEVICES:
            raise UsageError("--devices", f"must be between 1 and {MAX_DEVICES}, got {self.devices}")
        check_output_dir(self.out)


def check_output_dir(out: Path) -> None:
    """Refuse an --out that could not take summary.json, before minutes of work are spent."""
    if out.exists() and not out.is_dir():
        raise UsageError("--out", f"{out} exists and is not a directory")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UsageError("--out", f"{existing} is not a directory, so {out} cannot be created under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError("--out", f"{existing} is not writable")


def run_demo(options: DemoOptions, progress: Progress) -> dict[str, Any]:
    """Run the loop end to end and write DIR/summary.json; any broken promise raises instead."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgeloop-demo-") as work, LocalStack(Path(work)) as stack:
        progress(f"local stack up: moto server at {stack.endpoint}, IoT Core stand-in at port {stack.iot_core.port}")
        stack.provision(options.model_name)
        things = [f"edgeloop-device-{i:03d}" for i in range(1, options.devices + 1)]
        for thing in things:
            stack.add_device(thing)
        progress(f"provisioned buckets, model package group, fleet group and {len(things)} simulated core devices")
        trained, event = _training_job(stack, options, Path(work))
        manifest = trained.manifest
        progress(f"trained {manifest.model_name}: holdout accuracy {manifest.holdout_accuracy:.4f} (ONNX, fp32)")
        bus = stack.event_bus()
        published = bus.put(event).result
        progress(
            f"training_completed λ: registered v{published['modelVersion']} ({published['approval']}), "
            f"component {published['componentName']} {published['componentVersion']}"
        )
        record = stack.registry.get(options.model_name, int(published["modelVersion"]))
        if record.approval is not ApprovalStatus.APPROVED:
            raise EdgeloopError(f"{record.model_name} v{record.version} was not approved: {record.approval}")
        deployed = bus.put(stack.model_package_event(record)).result
        deployment_id = str(deployed["deploymentId"])
        _check_deployment(stack, deployment_id, len(things))
        signed = "its KMS signature and digest" if record.signed else "its digest (unsigned)"
        progress(f"model_approved λ: deployment {deployment_id} reached {len(things)} devices, all verified {signed}")
        truth = _stream(stack, things, trained)
        progress(f"streamed {len(truth)} held-out samples through the devices")
        _wait_until_settled(stack, progress)
        final = {thing: _stop_device(stack, thing) for thing in things}
        _wait_for_final_shadows(stack, final)
        summary = _summary(stack, record, manifest.holdout_accuracy, things, truth)
        summary["run"] = {"wall_s": round(time.monotonic() - started, 2), "deployment_id": deployment_id}
    _check_promises(summary, options.devices)
    write_summary(options.out, summary)
    return summary


def _training_job(stack: LocalStack, options: DemoOptions, work: Path) -> tuple[TrainingResult, dict[str, Any]]:
    """Run the training entry point as a SageMaker job would, and build the job's completion event."""
    job = f"edgeloop-{options.model_name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    sagemaker = stack.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=job,
        AlgorithmSpecification={"TrainingImage": "edgeloop-training:local", "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/edgeloop-training",
        OutputDataConfig={"S3OutputPath": f"s3://{stack.names.data_bucket}/{TRAINING_OUTPUT_PREFIX.rstrip('/')}"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        HyperParameters={"model_name": options.model_name, "seed": str(options.seed)},
    )
    model_dir = work / "training" / "model"
    result = train(
        TrainingConfig(
            model_dir=model_dir,
            model_name=options.model_name,
            output_data_dir=work / "training" / "output",
            seed=options.seed,
            training_job=job,
        )
    )
    described = sagemaker.describe_training_job(TrainingJobName=job)
    stack.store.put(described["ModelArtifacts"]["S3ModelArtifacts"], _tar_gz(model_dir))
    detail = {k: _jsonable(v) for k, v in described.items() if k != "ResponseMetadata"}
    event = {
        "version": "0",
        "id": f"local-{job}",
        "detail-type": TRAINING_JOB_STATE_CHANGE,
        "source": SAGEMAKER_SOURCE,
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [described["TrainingJobArn"]],
        "detail": detail,
    }
    return result, event


def _tar_gz(model_dir: Path) -> bytes:
    """model.tar.gz exactly as SageMaker packs SM_MODEL_DIR (entries under ./)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=f"./{path.name}")
    return buffer.getvalue()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return int(value.timestamp() * 1000) if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _check_deployment(stack: LocalStack, deployment_id: str, expected: int) -> None:
    """Every device must have installed, verified and activated the model (their job executions)."""
    outcomes = stack.greengrass.outcomes(deployment_id)
    failed = [o for o in outcomes if o.status is not ExecutionStatus.SUCCEEDED]
    if failed or len(outcomes) != expected:
        details = "; ".join(f"{o.thing_name}: {o.detail}" for o in failed) or f"{len(outcomes)} of {expected} reached"
        raise EdgeloopError(f"deployment {deployment_id} did not succeed everywhere: {details}")


def _stream(stack: LocalStack, things: list[str], trained: TrainingResult) -> dict[str, int]:
    """Send held-out rows round-robin to the devices; returns request id -> true label index."""
    truth: dict[str, int] = {}
    x, y = trained.x_holdout, trained.y_holdout
    for index in range(len(x)):
        thing = things[index % len(things)]
        request_id = f"{thing}-{index:05d}"
        truth[request_id] = int(y[index])
        stack.devices[thing].submit(request_id, np.asarray(x[index], dtype=np.float64).tolist())
    return truth


def _wait_until_settled(stack: LocalStack, progress: Progress) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = ""
    while True:
        reports = [d.health() for d in stack.devices.values()]
        produced = sum(r.records_produced for r in reports)
        delivered = sum(r.records_delivered for r in reports)
        answered = sum(r.inferences + r.rejected_inputs for r in reports)
        line = f"devices answered {answered}, records {delivered}/{produced}"
        if line != last:
            progress(line)
            last = line
        if all(d.settled() for d in stack.devices.values()):
            return
        if time.monotonic() > deadline:
            raise EdgeloopError(f"devices did not deliver everything within {SETTLE_TIMEOUT_S:.0f} s ({line})")
        time.sleep(0.2)


def _stop_device(stack: LocalStack, thing: str) -> HealthReport:
    """Stop one device (it forwards and reports a last time) and return its final in-process health."""
    device = stack.devices[thing]
    device.stop()
    if device.final_health is None:
        raise EdgeloopError(f"{thing} stopped without a final health report")
    return device.final_health


def _wait_for_final_shadows(stack: LocalStack, final: dict[str, HealthReport]) -> None:
    """The shadow service runs after the broker's PUBACK; wait until every last report has landed."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    pending = dict(final)
    while pending:
        stack.iot_core.drain()
        for thing, report in list(pending.items()):
            reported = _read_shadow(stack, thing)["state"]["reported"]
            if (
                reported.get("records_produced") == report.records_produced
                and reported.get("records_delivered") == report.records_delivered
            ):
                del pending[thing]
        if pending and time.monotonic() > deadline:
            raise EdgeloopError(f"final health reports never reached the shadows of {sorted(pending)}")
        if pending:
            time.sleep(0.1)


def _read_shadow(stack: LocalStack, thing: str) -> dict[str, Any]:
    payload = stack.client("iot-data").get_thing_shadow(thingName=thing, shadowName=HEALTH_SHADOW)["payload"]
    document: dict[str, Any] = json.loads(payload.read())
    return document


def _summary(
    stack: LocalStack,
    record: Any,
    holdout_accuracy: float,
    things: list[str],
    truth: dict[str, int],
) -> dict[str, Any]:
    devices = []
    produced = delivered = 0
    for thing in things:
        shadow = _read_shadow(stack, thing)
        health = HealthReport.from_shadow(shadow)
        results = stack.results.results(thing)
        versions = sorted({d.result.model_version for d in results})
        correct = sum(1 for d in results if truth[d.result.request_id] == d.result.label_index)
        produced += health.records_produced
        delivered += stack.results.delivered_count(thing)
        devices.append(
            {
                "thing_name": thing,
                "model_version": versions[0] if len(versions) == 1 else versions,
                "inferences": health.inferences,
                "results_delivered": len(results),
                "stream_accuracy": round(correct / len(results), 4) if results else None,
                "health": shadow["state"]["reported"],
                "shadow_version": shadow.get("version"),
            }
        )
    return {
        "model": {
            "name": record.model_name,
            "version": record.version,
            "sha256": record.sha256,
            "holdout_accuracy": round(holdout_accuracy, 4),
            "approval": record.approval.value,
            "signed": record.signed,
            "package_arn": record.package_arn,
            "component": f"{record.component_name} {record.component_version}",
            "inference_component": f"{INFERENCE_COMPONENT} {stack.inference_version}",
        },
        "devices": devices,
        "records": {
            "produced": produced,
            "delivered": delivered,
            "lost": produced - delivered,
            "duplicates_ignored": stack.results.duplicates,
        },
        "cloud": {
            "shadow_updates_accepted": stack.shadows.accepted,
            "shadow_updates_rejected": stack.shadows.rejected,
            "rule_failures": stack.iot_core.rule_failures,
        },
    }


def _check_promises(summary: dict[str, Any], devices: int) -> None:
    """The demo fails, and writes nothing, if the loop broke any promise it makes."""
    problems = []
    version = summary["model"]["version"]
    if len(summary["devices"]) != devices:
        problems.append(f"{len(summary['devices'])} devices reported, expected {devices}")
    for device in summary["devices"]:
        if device["model_version"] != version:
            problems.append(f"{device['thing_name']} answered with model version(s) {device['model_version']}")
        if device["health"].get("model_version") != version:
            problems.append(f"{device['thing_name']} reports model v{device['health'].get('model_version')}")
        if device["inferences"] <= 0:
            problems.append(f"{device['thing_name']} made no inferences")
        if summary["model"]["signed"] and device["health"].get("model_signed") is not True:
            problems.append(f"{device['thing_name']} did not verify the model's signature")
    if summary["records"]["lost"] != 0:
        problems.append(f"{summary['records']['lost']} records lost")
    if problems:
        raise EdgeloopError("the loop did not close: " + "; ".join(problems))


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    """Write DIR/summary.json atomically: a reader never sees half a file."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=out, prefix=f".{SUMMARY_FILE}.")
    except OSError as exc:
        raise UsageError("--out", f"cannot write {out / SUMMARY_FILE}: {exc.strerror or exc}") from exc
    target = out / SUMMARY_FILE
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
