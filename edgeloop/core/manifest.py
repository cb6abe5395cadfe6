"""The model manifest: the one contract between training, the registry and the device."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ManifestError, ValidationError
from edgeloop.core.names import validate_model_name

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 2
SUPPORTED_DTYPES = ("float32",)
PRECISIONS = ("fp32", "int8-dynamic", "int8-static")
REFERENCE_PRECISION = "fp32"
"""The variant every other one is gated against: the model as trained."""
GATE_TOLERANCE = 1e-4
"""Slack when the manifest's own gate arithmetic is re-checked (metrics travel rounded)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_BANDS = 64


@dataclass(frozen=True)
class Artifact:
    """One model file and what it claims to be; the device verifies sha256 before loading it."""

    file: str
    sha256: str
    bytes: int
    precision: str

    def __post_init__(self) -> None:
        if "/" in self.file or self.file.startswith(".") or not self.file:
            raise ManifestError("artifacts.file", f"{self.file!r} must be a plain file name")
        if not _SHA256.match(self.sha256):
            raise ManifestError("artifacts.sha256", f"{self.sha256!r} is not a lowercase hex SHA-256")
        if self.bytes <= 0:
            raise ManifestError("artifacts.bytes", f"must be > 0, got {self.bytes}")
        if self.precision not in PRECISIONS:
            raise ManifestError("artifacts.precision", f"{self.precision!r}; expected one of {PRECISIONS}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Artifact:
        """Parse one artifacts entry."""
        where = "artifacts[]"
        wire.only_keys(data, {"file", "sha256", "bytes", "precision"}, where)
        return cls(
            file=wire.text(data, "file", where),
            sha256=wire.text(data, "sha256", where),
            bytes=wire.integer(data, "bytes", where, minimum=1),
            precision=wire.text(data, "precision", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes, "precision": self.precision}


@dataclass(frozen=True)
class InputSchema:
    """What one inference request must look like; the device rejects anything else."""

    name: str
    dtype: str
    features: tuple[str, ...]
    minimum: float
    maximum: float

    def __post_init__(self) -> None:
        if self.dtype not in SUPPORTED_DTYPES:
            raise ManifestError("input.dtype", f"{self.dtype!r}; expected one of {SUPPORTED_DTYPES}")
        if not self.features:
            raise ManifestError("input.features", "must name at least one feature")
        if self.minimum > self.maximum:
            raise ManifestError("input.minimum", f"{self.minimum} is above maximum {self.maximum}")

    @property
    def width(self) -> int:
        """Number of features per request."""
        return len(self.features)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSchema:
        """Parse the input section."""
        where = "input"
        wire.only_keys(data, {"name", "dtype", "features", "minimum", "maximum"}, where)
        features = wire.sequence(data, "features", where)
        if not all(isinstance(f, str) and f for f in features):
            raise ManifestError("input.features", "must be a list of non-empty strings")
        return cls(
            name=wire.text(data, "name", where),
            dtype=wire.text(data, "dtype", where),
            features=tuple(features),
            minimum=wire.number(data, "minimum", where),
            maximum=wire.number(data, "maximum", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "features": list(self.features),
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


@dataclass(frozen=True)
class OutputSchema:
    """Which model output holds the class probabilities (shape [batch, len(labels)])."""

    probabilities: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSchema:
        """Parse the output section."""
        wire.only_keys(data, {"probabilities"}, "output")
        return cls(probabilities=wire.text(data, "probabilities", "output"))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"probabilities": self.probabilities}


@dataclass(frozen=True)
class Golden:
    """Known inputs with the labels the model must give: the device's self-test after a swap."""

    inputs: tuple[tuple[float, ...], ...]
    labels: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ManifestError("golden", f"{len(self.inputs)} inputs but {len(self.labels)} labels")
        if not self.inputs:
            raise ManifestError("golden", "needs at least one input: an empty self-test would pass any model")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Golden:
        """Parse the golden section."""
        wire.only_keys(data, {"inputs", "labels"}, "golden")
        rows = wire.sequence(data, "inputs", "golden")
        labels = wire.sequence(data, "labels", "golden")
        if not all(isinstance(row, list | tuple) and all(map(_is_finite, row)) for row in rows):
            raise ManifestError("golden.inputs", "must be a list of lists of finite numbers")
        inputs = tuple(tuple(float(v) for v in row) for row in rows)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in labels):
            raise ManifestError("golden.labels", "must be a list of label indices")
        return cls(inputs=inputs, labels=tuple(labels))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"inputs": [list(r) for r in self.inputs], "labels": list(self.labels)}


@dataclass(frozen=True)
class Gate:
    """The accuracy gate's decision: each variant's drop versus the reference, and whether the model may ship.

    `drop` is the selected variant's; `rejected` names every variant the gate refused, with why. A manifest
    whose gate did not pass is never registered as deployable.
    """

    metric: str
    bound: float
    drop: float
    passed: bool
    reference: str = REFERENCE_PRECISION
    minimum: float | None = None
    """An absolute floor on the reference's metric (None: only the drop is gated)."""
    rejected: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.metric:
            raise ManifestError("gate.metric", "must name a metric")
        if not 0.0 <= self.bound <= 1.0:
            raise ManifestError("gate.bound", f"{self.bound} is outside [0, 1]")
        if self.passed and self.drop > self.bound + GATE_TOLERANCE:
            raise ManifestError("gate.passed", f"true although drop {self.drop} exceeds bound {self.bound}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        """Parse the gate section."""
        where = "gate"
        wire.only_keys(data, {"metric", "bound", "drop", "passed", "reference", "minimum", "rejected"}, where)
        passed = data.get("passed")
        if not isinstance(passed, bool):
            raise ManifestError("gate.passed", f"expected true or false, got {passed!r}")
        minimum = data.get("minimum")
        return cls(
            metric=wire.text(data, "metric", where),
            bound=wire.number(data, "bound", where),
            drop=wire.number(data, "drop", where),
            passed=passed,
            reference=wire.text(data, "reference", where),
            minimum=None if minimum is None else wire.number(data, "minimum", where),
            rejected=wire.string_map(data, "rejected", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "metric": self.metric,
            "bound": self.bound,
            "drop": self.drop,
            "passed": self.passed,
            "reference": self.reference,
            "minimum": self.minimum,
            "rejected": dict(self.rejected),
        }


@dataclass(frozen=True)
class FeatureBaseline:
    """One feature's training distribution: summary statistics and a binned histogram for drift scores (PSI).

    `edges` are the inner bin edges (ascending, len(fractions) - 1 of them): bin 0 is (-inf, edges[0]),
    the last is [edges[-1], inf), so a device can bin any value without knowing the training range.
    """

    name: str
    mean: float
    std: float
    minimum: float
    maximum: float
    edges: tuple[float, ...]
    fractions: tuple[float, ...]

    def __post_init__(self) -> None:
        where = f"baseline.features[{self.name}]"
        if self.std < 0:
            raise ManifestError(f"{where}.std", f"must be >= 0, got {self.std}")
        if self.minimum > self.maximum:
            raise ManifestError(f"{where}.minimum", f"{self.minimum} is above maximum {self.maximum}")
        if len(self.fractions) != len(self.edges) + 1:
            raise ManifestError(f"{where}.fractions", f"needs len(edges) + 1 = {len(self.edges) + 1} values")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ManifestError(f"{where}.edges", "must be strictly ascending")
        if any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1.0) > 1e-3:
            raise ManifestError(f"{where}.fractions", "must be non-negative and sum to 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureBaseline:
        """Parse one feature's baseline."""
        where = "baseline.features[]"
        wire.only_keys(data, {"name", "mean", "std", "minimum", "maximum", "edges", "fractions"}, where)
        return cls(
            name=wire.text(data, "name", where),
            mean=wire.number(data, "mean", where),
            std=wire.number(data, "std", where),
            minimum=wire.number(data, "minimum", where),
            maximum=wire.number(data, "maximum", where),
            edges=_numbers(data, "edges", where),
            fractions=_numbers(data, "fractions", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "mean": self.mean,
            "std": self.std,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "edges": list(self.edges),
            "fractions": list(self.fractions),
        }


@dataclass(frozen=True)
class Reliability:
    """Holdout rows and errors per confidence band (edges split [0, 1]): the calibrated detector's reference."""

    edges: tuple[float, ...]
    rows: tuple[int, ...]
    errors: tuple[int, ...]

    def __post_init__(self) -> None:
        e, n, pairs = self.edges, len(self.edges) + 1, list(zip(self.rows, self.errors, strict=False))
        if not (
            n <= MAX_BANDS
            and all(0 < a < b for a, b in zip(e, (*e[1:], 1.0), strict=False))
            and len(self.rows) == len(self.errors) == n
            and all(type(r) is type(x) is int and 0 <= x <= r for r, x in pairs)
            and sum(self.rows) > 0
        ):
            raise ManifestError("baseline.reliability", "needs edges ascending in (0, 1), per band 0 <= errors <= rows")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: list(getattr(self, k)) for k in ("edges", "rows", "errors")}

    @classmethod
    def from_dict(cls, data: object, where: str = "baseline.reliability") -> Reliability:
        """Parse a table strictly."""
        d = wire.mapping(data, where)
        wire.only_keys(d, {"edges", "rows", "errors"}, where)
        return cls(_numbers(d, "edges", where), *(tuple(wire.sequence(d, k, where)) for k in ("rows", "errors")))


@dataclass(frozen=True)
class Baseline:
    """What the model saw in training, per feature and for its own behaviour: the device's drift reference.

    `holdout_rows` and `class_fractions` (the holdout's predicted-class shares) came with label-free drift
    signals: when set, the confidence baseline describes the same holdout rows (not the training rows, where
    a model is surer than on anything new). A manifest without them still parses; its device skips those signals.
    """

    rows: int
    features: tuple[FeatureBaseline, ...]
    confidence_mean: float
    confidence_edges: tuple[float, ...]
    confidence_fractions: tuple[float, ...]
    holdout_rows: int | None = None
    """Rows the confidence and class baselines describe (the holdout); None: confidence from training rows."""
    class_fractions: tuple[float, ...] | None = None
    """The share of holdout rows predicted as each label, in label order; None: not recorded."""
    reliability: Reliability | None = None
    """None: not recorded."""

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ManifestError("baseline.rows", f"must be >= 1, got {self.rows}")
        if not 0.0 <= self.confidence_mean <= 1.0:
            raise ManifestError("baseline.confidence_mean", f"{self.confidence_mean} is outside [0, 1]")
        if len(self.confidence_fractions) != len(self.confidence_edges) + 1:
            raise ManifestError("baseline.confidence_fractions", "needs len(confidence_edges) + 1 values")
        if self.holdout_rows is not None and self.holdout_rows < 1:
            raise ManifestError("baseline.holdout_rows", f"must be >= 1, got {self.holdout_rows}")
        if self.class_fractions is not None:
            if self.holdout_rows is None:
                raise ManifestError("baseline.class_fractions", "needs holdout_rows (the rows they describe)")
            if any(f < 0 for f in self.class_fractions) or abs(sum(self.class_fractions) - 1.0) > 1e-3:
                raise ManifestError("baseline.class_fractions", "must be non-negative and sum to 1")
        if self.reliability is not None and sum(self.reliability.rows) != self.holdout_rows:
            raise ManifestError("baseline.reliability", "must describe the holdout_rows")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        """Parse the baseline section (holdout_rows, class_fractions, reliability: optional, older ones lack them)."""
        where = "baseline"
        keys = {"rows", "features", "confidence_mean", "confidence_edges", "confidence_fractions"}
        wire.only_keys(data, keys | {"holdout_rows", "class_fractions", "reliability"}, where)
        return cls(
            rows=wire.integer(data, "rows", where, minimum=1),
            features=tuple(
                FeatureBaseline.from_dict(wire.mapping(f, "baseline.features[]"))
                for f in wire.sequence(data, "features", where)
            ),
            confidence_mean=wire.number(data, "confidence_mean", where),
            confidence_edges=_numbers(data, "confidence_edges", where),
            confidence_fractions=_numbers(data, "confidence_fractions", where),
            holdout_rows=wire.integer(data, "holdout_rows", where, minimum=1) if "holdout_rows" in data else None,
            class_fractions=_numbers(data, "class_fractions", where) if "class_fractions" in data else None,
            reliability=Reliability.from_dict(data["reliability"]) if "reliability" in data else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the optional keys only when set, so an older manifest reads back byte for byte)."""
        data: dict[str, Any] = {
            "rows": self.rows,
            "features": [f.to_dict() for f in self.features],
            "confidence_mean": self.confidence_mean,
            "confidence_edges": list(self.confidence_edges),
            "confidence_fractions": list(self.confidence_fractions),
        }
        if self.holdout_rows is not None:
            data["holdout_rows"] = self.holdout_rows
        if self.class_fractions is not None:
            data["class_fractions"] = list(self.class_fractions)
        if self.reliability is not None:
            data["reliability"] = self.reliability.to_dict()
        return data


@dataclass(frozen=True)
class Lineage:
    """Where a model came from, so a registry version can be traced back to data and code."""

    dataset: str
    dataset_sha256: str
    training_job: str
    code_version: str
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    parent_version: int | None = None
    """The registry version this model was retrained from (None for a first model)."""

    def __post_init__(self) -> None:
        if self.parent_version is not None and self.parent_version < 1:
            raise ManifestError("lineage.parent_version", f"must be >= 1, got {self.parent_version}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        """Parse the lineage section."""
        where = "lineage"
        keys = {"dataset", "dataset_sha256", "training_job", "code_version", "hyperparameters", "parent_version"}
        wire.only_keys(data, keys, where)
        parent = data.get("parent_version")
        return cls(
            dataset=wire.text(data, "dataset", where),
            dataset_sha256=wire.text(data, "dataset_sha256", where),
            training_job=wire.text(data, "training_job", where),
            code_version=wire.text(data, "code_version", where),
            hyperparameters=wire.string_map(data, "hyperparameters", where),
            parent_version=None if parent is None else wire.integer(data, "parent_version", where, minimum=1),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "dataset": self.dataset,
            "dataset_sha256": self.dataset_sha256,
            "training_job": self.training_job,
            "code_version": self.code_version,
            "hyperparameters": dict(self.hyperparameters),
            "parent_version": self.parent_version,
        }


@dataclass(frozen=True)
class ModelManifest:
    """Everything the registry and the device need to trust and run one trained model."""

    model_name: str
    created_at: str
    artifacts: tuple[Artifact, ...]
    selected: str
    input: InputSchema
    output: OutputSchema
    labels: tuple[str, ...]
    metrics: Mapping[str, Mapping[str, float]]
    golden: Golden
    lineage: Lineage
    gate: Gate
    baseline: Baseline
    schema_version: int = MANIFEST_SCHEMA_VERSION

    def __post_init__(self) -> None:
        try:
            validate_model_name(self.model_name)
        except ValidationError as exc:
            raise ManifestError("model_name", exc.message) from exc
        if self.schema_version != MANIFEST_SCHEMA_VERSION:
            raise ManifestError(
                "schema_version", f"{self.schema_version}; this edgeloop reads {MANIFEST_SCHEMA_VERSION}"
            )
        files = [a.file for a in self.artifacts]
        if len(set(files)) != len(files):
            raise ManifestError("artifacts", f"file names must be unique, got {files}")
        if self.selected not in files:
            raise ManifestError("selected", f"{self.selected!r} is not one of the artifacts {files}")
        if len(self.labels) < 2:
            raise ManifestError("labels", "a classifier needs at least two labels")
        if "accuracy" not in self.metrics.get(self.selected_artifact.precision, {}):
            raise ManifestError("metrics", f"no accuracy for the selected {self.selected_artifact.precision}")
        for variant, values in self.metrics.items():
            if "accuracy" in values and not 0.0 <= values["accuracy"] <= 1.0:
                raise ManifestError(f"metrics.{variant}.accuracy", f"{values['accuracy']} is outside [0, 1]")
        bad = [x for x in self.golden.labels if not 0 <= x < len(self.labels)]
        if bad:
            raise ManifestError("golden.labels", f"indices {bad} are outside the {len(self.labels)} labels")
        widths = {len(row) for row in self.golden.inputs}
        if widths - {self.input.width}:
            raise ManifestError("golden.inputs", f"rows must have {self.input.width} values")
        self._check_gate()
        names = tuple(f.name for f in self.baseline.features)
        if names != self.input.features:
            raise ManifestError("baseline.features", f"must describe the input features in order, got {names}")
        classes = self.baseline.class_fractions
        if classes is not None and len(classes) != len(self.labels):
            raise ManifestError("baseline.class_fractions", f"needs one share per label ({len(self.labels)})")

    def _check_gate(self) -> None:
        """The gate must be about variants that exist, and the selected one must be one it let through."""
        gate = self.gate
        if gate.reference not in self.metrics or gate.metric not in self.metrics[gate.reference]:
            raise ManifestError("gate.metric", f"no {gate.metric!r} for the reference variant {gate.reference!r}")
        unknown = sorted(set(gate.rejected) - set(self.metrics))
        if unknown:
            raise ManifestError("gate.rejected", f"names variants without metrics: {unknown}")
        selected = self.selected_artifact.precision
        if selected in gate.rejected:
            raise ManifestError("selected", f"{selected} was rejected by the gate: {gate.rejected[selected]}")
        if gate.metric not in self.metrics.get(selected, {}):
            raise ManifestError("gate.metric", f"no {gate.metric!r} for the selected variant {selected!r}")
        expected = self.metrics[gate.reference][gate.metric] - self.metrics[selected][gate.metric]
        if abs(expected - gate.drop) > GATE_TOLERANCE:
            raise ManifestError(
                "gate.drop", f"{gate.drop} does not match the metrics (reference - selected = {expected})"
            )

    @property
    def deployable(self) -> bool:
        """Whether the accuracy gate let this model through: the registry never approves one that it did not."""
        return self.gate.passed

    @property
    def selected_artifact(self) -> Artifact:
        """The artifact the device should load."""
        return next(a for a in self.artifacts if a.file == self.selected)

    @property
    def holdout_accuracy(self) -> float:
        """Holdout accuracy of the selected artifact."""
        return self.metrics[self.selected_artifact.precision]["accuracy"]

    @classmethod
    def from_dict(cls, data: object) -> ModelManifest:
        """Parse and validate a manifest; any problem raises ManifestError naming the field."""
        try:
            return cls._parse(wire.mapping(data, "manifest"))
        except ManifestError:
            raise
        except ValidationError as exc:
            raise ManifestError(exc.field, exc.message) from exc

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> ModelManifest:
        keys = {"schema_version", "model_name", "created_at", "artifacts", "selected", "input", "output"}
        wire.only_keys(data, keys | {"labels", "metrics", "golden", "lineage", "gate", "baseline"}, "manifest")
        labels = wire.sequence(data, "labels", "manifest")
        if not all(isinstance(x, str) for x in labels):
            raise ManifestError("labels", "must be a list of strings")
        return cls(
            schema_version=wire.integer(data, "schema_version", "manifest"),
            model_name=wire.text(data, "model_name", "manifest"),
            created_at=wire.text(data, "created_at", "manifest"),
            artifacts=tuple(
                Artifact.from_dict(wire.mapping(a, "artifacts[]")) for a in wire.sequence(data, "artifacts", "manifest")
            ),
            selected=wire.text(data, "selected", "manifest"),
            input=InputSchema.from_dict(wire.mapping(data.get("input"), "input")),
            output=OutputSchema.from_dict(wire.mapping(data.get("output"), "output")),
            labels=tuple(labels),
            metrics=_parse_metrics(wire.mapping(data.get("metrics"), "metrics")),
            golden=Golden.from_dict(wire.mapping(data.get("golden"), "golden")),
            lineage=Lineage.from_dict(wire.mapping(data.get("lineage"), "lineage")),
            gate=Gate.from_dict(wire.mapping(data.get("gate"), "gate")),
            baseline=Baseline.from_dict(wire.mapping(data.get("baseline"), "baseline")),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form, the exact inverse of from_dict."""
        return {
            "schema_version": self.schema_version,
            "model_name": self.model_name,
            "created_at": self.created_at,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "selected": self.selected,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "labels": list(self.labels),
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
            "golden": self.golden.to_dict(),
            "lineage": self.lineage.to_dict(),
            "gate": self.gate.to_dict(),
            "baseline": self.baseline.to_dict(),
        }

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys), so the same manifest always hashes the same."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelManifest:
        """Parse manifest JSON text."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError("manifest", f"is not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def _is_finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(data: Mapping[str, Any], key: str, where: str) -> tuple[float, ...]:
    values = wire.sequence(data, key, where)
    if not all(map(_is_finite, values)):
        raise ManifestError(f"{where}.{key}", "must be a list of finite numbers")
    return tuple(float(v) for v in values)


def _parse_metrics(data: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for variant, values in data.items():
        values = wire.mapping(values, f"metrics.{variant}")
        out[variant] = {k: wire.number(values, k, f"metrics.{variant}") for k in values}
    return out
