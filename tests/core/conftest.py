"""Builders for valid core records, so each test states only what it changes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edgeloop.core.health import HealthReport, LatencySummary, ModelState
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.records import Record, RecordKind
from edgeloop.core.registry import ApprovalStatus, RegistryRecord
from edgeloop.core.rollout import Rollout, RolloutState
from edgeloop.core.settings import (
    ENV_ARTIFACTS_BUCKET,
    ENV_AUTO_APPROVE_MIN_ACCURACY,
    ENV_FLEET_THING_GROUP_ARN,
    ENV_INFERENCE_COMPONENT_VERSION,
    ENV_TRAINING_OUTPUT_URI,
)

SPECS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
RECIPE_SCHEMA = SPECS_DIR / "greengrass-recipe.schema.json"
FP32_SHA = "0123456789abcdef" * 4
INT8_SHA = "fedcba9876543210" * 4

_MANIFEST: dict[str, Any] = {
    "schema_version": 2,
    "model_name": "iris-classifier",
    "created_at": "2026-11-24T12:00:00Z",
    "artifacts": [
        {"file": "model.onnx", "sha256": FP32_SHA, "bytes": 2048, "precision": "fp32"},
        {"file": "model.int8.onnx", "sha256": INT8_SHA, "bytes": 900, "precision": "int8-dynamic"},
    ],
    "selected": "model.int8.onnx",
    "input": {
        "name": "input",
        "dtype": "float32",
        "features": ["sepal_length", "sepal_width", "petal_length"],
        "minimum": -1.5,
        "maximum": 10.25,
    },
    "output": {"probabilities": "probabilities"},
    "labels": ["setosa", "versicolor", "virginica"],
    "metrics": {
        "fp32": {"accuracy": 0.96, "f1": 0.955},
        "int8-dynamic": {"accuracy": 0.9375, "f1": 0.93},
    },
    "golden": {"inputs": [[5.1, 3.5, 1.4], [6.5, 3.0, 5.2]], "labels": [0, 2]},
    "lineage": {
        "dataset": "s3://edgeloop-data/iris/2026-11-24.csv",
        "dataset_sha256": FP32_SHA,
        "training_job": "edgeloop-iris-20261124",
        "code_version": "4257f3f",
        "hyperparameters": {"max_iter": "200", "hidden": "16"},
        "parent_version": 3,
    },
    "gate": {
        "metric": "accuracy",
        "bound": 0.025,
        "drop": 0.0225,
        "passed": True,
        "reference": "fp32",
        "minimum": 0.9,
        "rejected": {},
    },
    "baseline": {
        "rows": 120,
        "features": [
            {
                "name": n,
                "mean": 3.0,
                "std": 1.5,
                "minimum": 0.1,
                "maximum": 7.9,
                "edges": [2.0, 3.0, 4.5],
                "fractions": [0.2, 0.3, 0.3, 0.2],
            }
            for n in ("sepal_length", "sepal_width", "petal_length")
        ],
        "confidence_mean": 0.91,
        "confidence_edges": [0.5, 0.9],
        "confidence_fractions": [0.05, 0.25, 0.7],
    },
}


def _manifest_dict(**overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(_MANIFEST)
    data.update(copy.deepcopy(overrides))
    return data


@pytest.fixture
def manifest_dict() -> Callable[..., dict[str, Any]]:
    """A fresh, valid manifest dict (top-level keys overridable) that a test may mutate freely."""
    return _manifest_dict


@pytest.fixture
def make_manifest() -> Callable[..., ModelManifest]:
    """A valid ModelManifest parsed from manifest_dict(**overrides)."""
    return lambda **overrides: ModelManifest.from_dict(_manifest_dict(**overrides))


def _registry_record(**overrides: Any) -> RegistryRecord:
    values: dict[str, Any] = {
        "model_name": "iris-classifier",
        "version": 3,
        "package_arn": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/edgeloop-iris-classifier/3",
        "approval": ApprovalStatus.APPROVED,
        "training_job": "edgeloop-iris-20261124",
        "artifact_uri": f"s3://edgeloop-artifacts/models/iris-classifier/{INT8_SHA}/model.int8.onnx",
        "manifest_uri": f"s3://edgeloop-artifacts/models/iris-classifier/{INT8_SHA}/manifest.json",
        "sha256": INT8_SHA,
        "holdout_accuracy": 0.9375,
    }
    values.update(overrides)
    return RegistryRecord(**values)


@pytest.fixture
def make_registry_record() -> Callable[..., RegistryRecord]:
    """A valid RegistryRecord matching the default manifest."""
    return _registry_record


def _health_report(**overrides: Any) -> HealthReport:
    values: dict[str, Any] = {
        "thing_name": "edge-dev-1",
        "model_name": "iris-classifier",
        "model_version": 3,
        "model_state": ModelState.ACTIVE,
        "model_detail": "",
        "inferences": 1200,
        "rejected_inputs": 4,
        "errors": 1,
        "latency": LatencySummary(p50_ms=0.25, p95_ms=1.25, p99_ms=1.5, max_ms=3.75, samples=1200),
        "buffer_depth": 17,
        "records_produced": 1204,
        "records_delivered": 1187,
        "connected": True,
        "reported_at": 1_795_000_000.5,
    }
    values.update(overrides)
    return HealthReport(**values)


@pytest.fixture
def make_health_report() -> Callable[..., HealthReport]:
    """A valid HealthReport of an active device."""
    return _health_report


def _record(
    seq: int, *, thing_name: str = "edge-dev-1", kind: RecordKind = RecordKind.RESULT, **payload: Any
) -> Record:
    return Record(
        thing_name=thing_name,
        seq=seq,
        kind=kind,
        created_at=1_795_000_000.0 + seq / 8,
        payload=payload or {"label": "setosa", "confidence": 0.875},
    )


@pytest.fixture
def make_record() -> Callable[..., Record]:
    """A Record with a small default payload; keyword arguments beyond thing_name/kind form the payload."""
    return _record


def _rollout(state: RolloutState = RolloutState.PENDING, ring: int = 0, ring_count: int = 3) -> Rollout:
    return Rollout(model_name="iris-classifier", model_version=3, state=state, ring=ring, ring_count=ring_count)


@pytest.fixture
def make_rollout() -> Callable[..., Rollout]:
    """A Rollout of iris-classifier v3 over three rings, in the given state and ring."""
    return _rollout


@pytest.fixture
def cloud_env() -> dict[str, str]:
    """A complete, valid cloud handler environment."""
    return {
        ENV_ARTIFACTS_BUCKET: "edgeloop-artifacts",
        ENV_FLEET_THING_GROUP_ARN: "arn:aws:iot:eu-west-1:123456789012:thinggroup/edgeloop-fleet",
        ENV_INFERENCE_COMPONENT_VERSION: "1.0.0",
        ENV_AUTO_APPROVE_MIN_ACCURACY: "0.9",
        ENV_TRAINING_OUTPUT_URI: "s3://edgeloop-data/training-output/",
    }


def _lower_keys(value: Any) -> Any:
    """Greengrass recipe keys are case-insensitive; the GDK lower-cases them before validating."""
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


@pytest.fixture(scope="session")
def recipe_errors() -> Callable[[dict[str, Any]], list[str]]:
    """Validate a recipe against the Greengrass recipe JSON schema; returns the error messages."""
    if not RECIPE_SCHEMA.is_file():
        pytest.skip(f"Greengrass recipe schema not found at {RECIPE_SCHEMA} (shared/specs is not checked out)")
    validator = jsonschema.Draft7Validator(json.loads(RECIPE_SCHEMA.read_text()))

    def errors(recipe: dict[str, Any]) -> list[str]:
        lowered = _lower_keys(recipe)
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(lowered)]

    return errors
