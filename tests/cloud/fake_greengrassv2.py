"""A small stateful greengrassv2 (and IoT DescribeJob) behind real boto3 clients, since moto has none.

Each call the adapter makes goes through botocore as usual: its parameters are validated against the service
model, then a `before-call` hook answers from this fake's state instead of the network, and every answer is
itself validated against the operation's output shape (as botocore's Stubber does). Unlike a queue of Stubber
responses, the fake keeps state, so a test asserts on effects (deploy, then read back) in any call order.

Behaviour kept from the service: component versions are immutable (ConflictException on re-creation),
unknown component versions, deployments and jobs are ResourceNotFoundException, each deployment gets an IoT
job, a new deployment to a target makes the previous one INACTIVE and cancels its job, and list_deployments
with historyFilter LATEST_ONLY answers the target's latest revision.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel
from botocore.validate import validate_parameters

ACCOUNT = "123456789012"
REGION = "us-east-1"
NOW = datetime(2026, 11, 24, tzinfo=UTC)

Answer = dict[str, Any]


class ServiceError(Exception):
    """What the fake answers as an AWS error response (botocore turns it into a ClientError)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.status, self.message = code, status, message


@dataclass
class _Deployment:
    deployment_id: str
    revision: int
    request: dict[str, Any]
    job_id: str
    status: str = "ACTIVE"
    executions: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """thing name -> (IoT job execution status, the nucleus's deployment-failure-cause or None)."""


@dataclass
class FakeGreengrassV2:
    """The service's state, and the boto3 clients wired to it."""

    account: str = ACCOUNT
    region: str = REGION
    recipes: dict[str, bytes] = field(default_factory=dict)
    deployments: list[_Deployment] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def clients(self) -> tuple[Any, Any]:
        """A greengrassv2 and an IoT client answered by this fake (neither can reach the network)."""
        keys = {"region_name": self.region, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        greengrass, iot = boto3.client("greengrassv2", **keys), boto3.client("iot", **keys)
        for client in (greengrass, iot):
            client.meta.events.register("before-parameter-build.*.*", _keep_params)
            client.meta.events.register_first("before-call.*.*", self._answer)
        return greengrass, iot

    def _answer(self, model: OperationModel, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, Answer]:
        """Answer one validated call from the fake's state, or as the service's error response."""
        handler: Callable[[dict[str, Any]], Answer] | None = getattr(self, f"_op_{model.name}", None)
        if handler is None:
            raise AssertionError(f"the fake greengrassv2 does not implement {model.name}")
        try:
            _check_patterns(model, context["fake_params"])
            with self._lock:  # the service serializes writes to one target
                answer = handler(context["fake_params"])
        except ServiceError as exc:
            error = {"Error": {"Code": exc.code, "Message": exc.message}, "ResponseMetadata": {}}
            return AWSResponse("https://fake", exc.status, {}, None), error
        if model.output_shape is not None:
            try:
                validate_parameters(answer, model.output_shape)
            except ParamValidationError as exc:  # the fake's own bug: never let the adapter map it to a domain error
                raise AssertionError(f"the fake answered {model.name} outside the service model: {exc}") from exc
        return AWSResponse("https://fake", 200, {}, None), {**answer, "ResponseMetadata": {"HTTPStatusCode": 200}}

    # --- greengrassv2 ------------------------------------------------------------------------------------

    def _op_CreateComponentVersion(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        try:
            recipe = json.loads(params["inlineRecipe"])
            name, version = recipe["ComponentName"], recipe["ComponentVersion"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceError("ValidationException", 400, f"the recipe is not valid: {exc}") from exc
        arn = self.component_arn(name, version)
        if arn in self.recipes:
            raise ServiceError("ConflictException", 409, f"component {name} version {version} already exists")
        self.recipes[arn] = bytes(params["inlineRecipe"])
        status = {"componentState": "DEPLOYABLE", "message": "NONE", "errors": {}}
        return {"arn": arn, "componentName": name, "componentVersion": version, "creationTimestamp": NOW,
                "status": status}  # fmt: skip

    def _op_GetComponent(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        recipe = self.recipes.get(params["arn"])
        if recipe is None:
            raise ServiceError("ResourceNotFoundException", 404, f"{params['arn']} does not exist")
        return {"recipeOutputFormat": params.get("recipeOutputFormat", "JSON"), "recipe": recipe}

    def _op_CreateDeployment(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        target = params["targetArn"]
        previous = [d for d in self.deployments if d.request["targetArn"] == target]
        for old in previous:
            if old.status == "ACTIVE":
                old.status = "INACTIVE"
        number = next(self._ids)
        deployment = _Deployment(f"d-{number:08d}", len(previous) + 1, dict(params), f"job-{number:08d}")
        self.deployments.append(deployment)
        return {"deploymentId": deployment.deployment_id, "iotJobId": deployment.job_id,
                "iotJobArn": self._job_arn(deployment.job_id)}  # fmt: skip

    def _op_GetDeployment(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        deployment = self._deployment(params["deploymentId"])
        request = deployment.request
        return {
            "targetArn": request["targetArn"],
            "revisionId": str(deployment.revision),
            "deploymentId": deployment.deployment_id,
            "deploymentName": request.get("deploymentName", ""),
            "deploymentStatus": deployment.status,
            "iotJobId": deployment.job_id,
            "iotJobArn": self._job_arn(deployment.job_id),
            "components": request.get("components", {}),
            "deploymentPolicies": request.get("deploymentPolicies", {}),
            "iotJobConfiguration": request.get("iotJobConfiguration", {}),
            "creationTimestamp": NOW,
            "isLatestForTarget": deployment is self._latest(request["targetArn"]),
        }

    def _op_ListDeployments(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        target = params.get("targetArn")
        mine = [d for d in self.deployments if target is None or d.request["targetArn"] == target]
        if params.get("historyFilter") == "LATEST_ONLY":
            mine = [d for d in mine if d is self._latest(d.request["targetArn"])]
        listed = [
            {"targetArn": d.request["targetArn"], "revisionId": str(d.revision), "deploymentId": d.deployment_id,
             "deploymentName": d.request.get("deploymentName", ""), "creationTimestamp": NOW,
             "deploymentStatus": d.status, "isLatestForTarget": d is self._latest(d.request["targetArn"])}
            for d in reversed(mine)
        ]  # fmt: skip
        return {"deployments": listed}

    # --- IoT, for the deployments' jobs --------------------------------------------------------------------

    def _op_DescribeJob(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        [deployment] = [d for d in self.deployments if d.job_id == params["jobId"]] or [None]
        if deployment is None:
            raise ServiceError("ResourceNotFoundException", 404, f"job {params['jobId']} does not exist")
        status = "IN_PROGRESS" if deployment.status == "ACTIVE" else "CANCELED"
        statuses = [execution for execution, _ in deployment.executions.values()]
        details = {f"numberOf{state}Things": statuses.count(state.upper().replace("TIMEDOUT", "TIMED_OUT").replace(
                       "INPROGRESS", "IN_PROGRESS"))
                   for state in ("Canceled", "Succeeded", "Failed", "Rejected", "Queued", "InProgress", "Removed",
                                 "TimedOut")}  # fmt: skip
        job = {"jobArn": self._job_arn(deployment.job_id), "jobId": deployment.job_id, "status": status,
               "targetSelection": "CONTINUOUS", "targets": [deployment.request["targetArn"]],
               "jobProcessDetails": details}  # fmt: skip
        return {"job": job}

    def _op_ListJobExecutionsForJob(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        deployment = self._job(params["jobId"])
        wanted = params.get("status")
        summaries = [
            {"thingArn": f"arn:aws:iot:{self.region}:{self.account}:thing/{thing}",
             "jobExecutionSummary": {"status": status, "executionNumber": 1}}
            for thing, (status, _) in deployment.executions.items() if wanted is None or status == wanted
        ]  # fmt: skip
        return {"executionSummaries": summaries[: params.get("maxResults", 100)]}

    def _op_DescribeJobExecution(self, params: dict[str, Any]) -> Answer:  # noqa: N802
        deployment = self._job(params["jobId"])
        if params["thingName"] not in deployment.executions:
            raise ServiceError("ResourceNotFoundException", 404, f"no execution of {params['jobId']} on that thing")
        status, cause = deployment.executions[params["thingName"]]
        details = {"detailsMap": {"deployment-failure-cause": cause}} if cause else {}
        return {"execution": {"jobId": params["jobId"], "status": status, "thingArn": params["thingName"],
                              "statusDetails": details}}  # fmt: skip

    def record_execution(self, deployment_id: str, thing: str, status: str, cause: str | None = None) -> None:
        """What one device's nucleus reported for a deployment's job (the service learns it from the device)."""
        self._deployment(deployment_id).executions[thing] = (status, cause)

    # --- helpers ----------------------------------------------------------------------------------------------

    def _job(self, job_id: str) -> _Deployment:
        for deployment in self.deployments:
            if deployment.job_id == job_id:
                return deployment
        raise ServiceError("ResourceNotFoundException", 404, f"job {job_id} does not exist")

    def component_arn(self, name: str, version: str) -> str:
        """The ARN the service gives a private component version."""
        return f"arn:aws:greengrass:{self.region}:{self.account}:components:{name}:versions:{version}"

    def _job_arn(self, job_id: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account}:job/{job_id}"

    def _deployment(self, deployment_id: str) -> _Deployment:
        for deployment in self.deployments:
            if deployment.deployment_id == deployment_id:
                return deployment
        raise ServiceError("ResourceNotFoundException", 404, f"deployment {deployment_id} does not exist")

    def _latest(self, target_arn: str) -> _Deployment | None:
        mine = [d for d in self.deployments if d.request["targetArn"] == target_arn]
        return mine[-1] if mine else None


def _check_patterns(model: OperationModel, params: dict[str, Any]) -> None:
    """The service checks each string's pattern from the model (botocore checks only types and lengths)."""
    shape = model.input_shape
    for name, value in params.items():
        pattern = shape.members[name].metadata.get("pattern") if shape is not None else None
        if isinstance(value, str) and pattern and not re.fullmatch(pattern, value):
            raise ServiceError("ValidationException", 400, f"{name} {value!r} does not match {pattern}")


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Keep the call's parameters as the caller gave them (botocore validates them next) for the fake's answer."""
    context["fake_params"] = dict(params)
