"""The model manifest: exact round trips, and every validation rule names the field it guards."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core.errors import ManifestError, ValidationError
from edgeloop.core.manifest import MANIFEST_SCHEMA_VERSION, ModelManifest

Mutation = Callable[[dict[str, Any]], None]


def test_dict_round_trip_is_exact(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    data = manifest_dict()
    manifest = ModelManifest.from_dict(data)
    assert manifest.to_dict() == data
    assert ModelManifest.from_dict(manifest.to_dict()) == manifest


def test_json_round_trip_is_exact_and_canonical(make_manifest: Callable[..., ModelManifest]) -> None:
    manifest = make_manifest()
    text = manifest.to_json()
    assert ModelManifest.from_json(text) == manifest
    assert ModelManifest.from_json(text.encode()) == manifest
    assert ModelManifest.from_json(text).to_json() == text
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_key_order_does_not_change_the_json(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    data = manifest_dict()
    reordered = dict(reversed(list(data.items())))
    assert ModelManifest.from_dict(reordered).to_json() == ModelManifest.from_dict(data).to_json()


def test_parsed_values_and_properties(make_manifest: Callable[..., ModelManifest]) -> None:
    manifest = make_manifest()
    assert manifest.schema_version == MANIFEST_SCHEMA_VERSION
    assert manifest.selected_artifact.file == "model.int8.onnx"
    assert manifest.selected_artifact.precision == "int8-dynamic"
    assert manifest.holdout_accuracy == 0.9375
    assert manifest.input.width == 3
    assert manifest.golden.inputs == ((5.1, 3.5, 1.4), (6.5, 3.0, 5.2))
    assert manifest.labels == ("setosa", "versicolor", "virginica")
    assert manifest.lineage.hyperparameters == {"max_iter": "200", "hidden": "16"}
    assert manifest.lineage.parent_version == 3
    assert manifest.deployable
    assert manifest.gate.drop == pytest.approx(0.96 - 0.9375)
    assert [f.name for f in manifest.baseline.features] == list(manifest.input.features)


def test_a_gate_that_did_not_pass_makes_the_model_undeployable(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    data = manifest_dict()
    data["gate"]["passed"] = False
    assert not ModelManifest.from_dict(data).deployable


def test_a_first_model_has_no_parent_version(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    data = manifest_dict()
    data["lineage"]["parent_version"] = None
    assert ModelManifest.from_dict(data).lineage.parent_version is None


def test_integers_in_float_fields_read_as_floats(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    data = manifest_dict()
    data["input"]["minimum"] = 0
    data["golden"]["inputs"] = [[5, 3, 1], [6, 3, 5]]
    manifest = ModelManifest.from_dict(data)
    assert isinstance(manifest.input.minimum, float)
    assert all(isinstance(v, float) for row in manifest.golden.inputs for v in row)


def test_manifest_is_frozen(make_manifest: Callable[..., ModelManifest]) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_manifest().selected = "model.onnx"  # type: ignore[misc]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets data[a][b]... = value for path 'a.b...' (integers index lists)."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        del target[last]

    return mutate


INVALID: list[Any] = [
    # sha256
    pytest.param(_set("artifacts.0.sha256", "abc123"), "artifacts.sha256", id="sha256-short"),
    pytest.param(_set("artifacts.0.sha256", "AB" * 32), "artifacts.sha256", id="sha256-uppercase"),
    pytest.param(_set("artifacts.1.sha256", "g" * 64), "artifacts.sha256", id="sha256-not-hex"),
    # unknown keys, at every level
    pytest.param(_set("signature", "x"), "manifest", id="unknown-top-level"),
    pytest.param(_set("artifacts.0.colour", "red"), "artifacts[]", id="unknown-artifact"),
    pytest.param(_set("input.scale", 1.0), "input", id="unknown-input"),
    pytest.param(_set("output.logits", "x"), "output", id="unknown-output"),
    pytest.param(_set("golden.weights", []), "golden", id="unknown-golden"),
    pytest.param(_set("lineage.owner", "me"), "lineage", id="unknown-lineage"),
    # missing keys
    pytest.param(_delete("created_at"), "manifest.created_at", id="missing-created_at"),
    pytest.param(_delete("schema_version"), "manifest.schema_version", id="missing-schema_version"),
    pytest.param(_delete("labels"), "manifest.labels", id="missing-labels"),
    pytest.param(_delete("input"), "input", id="missing-input"),
    pytest.param(_delete("metrics"), "metrics", id="missing-metrics"),
    pytest.param(_delete("artifacts.0.sha256"), "artifacts[].sha256", id="missing-artifact-sha256"),
    pytest.param(_delete("input.features"), "input.features", id="missing-features"),
    pytest.param(_delete("output.probabilities"), "output.probabilities", id="missing-probabilities"),
    pytest.param(_delete("golden.labels"), "golden.labels", id="missing-golden-labels"),
    pytest.param(_delete("lineage.training_job"), "lineage.training_job", id="missing-training_job"),
    pytest.param(_delete("lineage.hyperparameters"), "lineage.hyperparameters", id="missing-hyperparameters"),
    # gate, baseline and lineage (schema 2)
    pytest.param(_delete("gate"), "gate", id="missing-gate"),
    pytest.param(_set("gate.passed", "yes"), "gate.passed", id="gate-passed-not-bool"),
    pytest.param(_set("gate.bound", 1.5), "gate.bound", id="gate-bound-above-1"),
    pytest.param(_set("gate.bound", 0.01), "gate.passed", id="gate-passed-although-drop-exceeds-bound"),
    pytest.param(_set("gate.drop", 0.001), "gate.drop", id="gate-drop-disagrees-with-metrics"),
    pytest.param(_set("gate.metric", "auc"), "gate.metric", id="gate-metric-not-measured"),
    pytest.param(_set("gate.reference", "fp16"), "gate.metric", id="gate-reference-without-metrics"),
    pytest.param(_set("gate.rejected", {"int8-dynamic": "dropped 2.3 points"}), "selected", id="selected-was-rejected"),
    pytest.param(_set("gate.rejected", {"int8-static": "x"}), "gate.rejected", id="gate-rejects-unknown-variant"),
    pytest.param(_set("gate.colour", "red"), "gate", id="unknown-gate"),
    pytest.param(_delete("baseline"), "baseline", id="missing-baseline"),
    pytest.param(_set("baseline.rows", 0), "baseline.rows", id="baseline-no-rows"),
    pytest.param(_set("baseline.features", []), "baseline.features", id="baseline-features-missing"),
    pytest.param(_set("baseline.features.0.name", "petal_width"), "baseline.features", id="baseline-feature-renamed"),
    pytest.param(
        _set("baseline.features.0.edges", [3.0, 2.0, 4.5]),
        "baseline.features[sepal_length].edges",
        id="baseline-edges-descending",
    ),
    pytest.param(
        _set("baseline.features.0.fractions", [0.5, 0.5]),
        "baseline.features[sepal_length].fractions",
        id="baseline-fraction-count",
    ),
    pytest.param(
        _set("baseline.features.0.fractions", [0.5, 0.5, 0.5, 0.5]),
        "baseline.features[sepal_length].fractions",
        id="baseline-fractions-sum",
    ),
    pytest.param(
        _set("baseline.features.0.edges", [2.0, float("nan"), 4.5]), "baseline.features[].edges", id="baseline-edge-nan"
    ),
    pytest.param(_set("baseline.confidence_mean", 1.2), "baseline.confidence_mean", id="baseline-confidence-above-1"),
    pytest.param(_set("lineage.parent_version", 0), "lineage.parent_version", id="parent-version-0"),
    pytest.param(_set("lineage.parent_version", "3"), "lineage.parent_version", id="parent-version-string"),
    # cross-field rules
    pytest.param(_set("selected", "model.fp16.onnx"), "selected", id="selected-not-an-artifact"),
    pytest.param(_set("labels", ["only"]), "labels", id="one-label"),
    pytest.param(_set("labels", []), "labels", id="no-labels"),
    pytest.param(_set("labels", ["a", 2]), "labels", id="label-not-string"),
    pytest.param(_set("golden.labels", [0, 3]), "golden.labels", id="golden-label-too-high"),
    pytest.param(_set("golden.labels", [-1, 0]), "golden.labels", id="golden-label-negative"),
    pytest.param(_set("golden.inputs", [[1.0, 2.0, 3.0], [1.0, 2.0]]), "golden.inputs", id="golden-row-short"),
    pytest.param(_set("golden.inputs", [[1.0, 2.0, 3.0], [1, 2, 3, 4]]), "golden.inputs", id="golden-row-long"),
    pytest.param(_set("golden.labels", [0]), "golden", id="golden-count-mismatch"),
    pytest.param(_delete("metrics.int8-dynamic"), "metrics", id="no-metrics-for-selected"),
    pytest.param(_set("metrics.int8-dynamic", {"f1": 0.9}), "metrics", id="no-accuracy-for-selected"),
    pytest.param(_set("metrics.fp32", 0.96), "metrics.fp32", id="metrics-not-object"),
    pytest.param(_set("model_name", "Iris"), "model_name", id="model-name-upper"),
    pytest.param(_set("model_name", "iris_v2"), "model_name", id="model-name-underscore"),
    pytest.param(_set("model_name", "iris\n"), "model_name", id="model-name-newline"),
    pytest.param(_set("schema_version", 1), "schema_version", id="schema-version-1"),
    pytest.param(_set("schema_version", 3), "schema_version", id="schema-version-3"),
    pytest.param(_set("schema_version", 0), "schema_version", id="schema-version-0"),
    pytest.param(_set("schema_version", "1"), "manifest.schema_version", id="schema-version-string"),
    # booleans where integers are required
    pytest.param(_set("schema_version", True), "manifest.schema_version", id="bool-schema_version"),
    pytest.param(_set("artifacts.0.bytes", True), "artifacts[].bytes", id="bool-bytes"),
    pytest.param(_set("golden.labels", [True, 0]), "golden.labels", id="bool-golden-label"),
    pytest.param(_set("golden.inputs", [[True, 2.0, 3.0], [1.0, 2.0, 3.0]]), "golden.inputs", id="bool-golden"),
    pytest.param(_set("input.minimum", False), "input.minimum", id="bool-minimum"),
    # non-finite numbers
    pytest.param(_set("input.minimum", math.nan), "input.minimum", id="nan-minimum"),
    pytest.param(_set("input.maximum", math.inf), "input.maximum", id="inf-maximum"),
    pytest.param(_set("metrics.fp32.accuracy", math.nan), "metrics.fp32.accuracy", id="nan-accuracy"),
    pytest.param(_set("golden.inputs.0", [math.nan, 1.0, 2.0]), "golden.inputs", id="nan-golden"),
    pytest.param(_set("golden.inputs.1", [1.0, -math.inf, 2.0]), "golden.inputs", id="inf-golden"),
    # other type and range rules
    pytest.param(_set("golden.inputs", ["123", "456"]), "golden.inputs", id="golden-row-string"),
    pytest.param(_set("golden.inputs.0", ["5.1", 3.5, 1.4]), "golden.inputs", id="golden-value-string"),
    pytest.param(_set("artifacts.0.bytes", 0), "artifacts[].bytes", id="bytes-zero"),
    pytest.param(_set("artifacts.0.bytes", 2048.0), "artifacts[].bytes", id="bytes-float"),
    pytest.param(_set("artifacts.0.precision", "fp16"), "artifacts.precision", id="precision-unknown"),
    pytest.param(_set("artifacts.0.file", "sub/model.onnx"), "artifacts.file", id="file-with-slash"),
    pytest.param(_set("artifacts.0.file", "../model.onnx"), "artifacts.file", id="file-dotdot"),
    pytest.param(_set("artifacts", {"file": "x"}), "manifest.artifacts", id="artifacts-not-list"),
    pytest.param(_set("artifacts.0", "model.onnx"), "artifacts[]", id="artifact-not-object"),
    pytest.param(_set("input.dtype", "float64"), "input.dtype", id="dtype-unsupported"),
    pytest.param(_set("input.features", []), "input.features", id="no-features"),
    pytest.param(_set("input.features", ["a", ""]), "input.features", id="empty-feature"),
    pytest.param(_set("input.minimum", 11.0), "input.minimum", id="minimum-above-maximum"),
    pytest.param(_set("created_at", ""), "manifest.created_at", id="created_at-empty"),
    pytest.param(_set("lineage.hyperparameters.max_iter", 200), "lineage.hyperparameters.max_iter", id="hyper-int"),
]


@pytest.mark.parametrize(("mutate", "field"), INVALID)
def test_every_rule_names_its_field(manifest_dict: Callable[..., dict[str, Any]], mutate: Mutation, field: str) -> None:
    data = manifest_dict()
    mutate(data)
    with pytest.raises(ManifestError) as info:
        ModelManifest.from_dict(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_unknown_key_message_names_the_key(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ManifestError, match="signature"):
        ModelManifest.from_dict(manifest_dict(signature="x"))


@pytest.mark.parametrize("data", [[], "manifest", None, 3], ids=["list", "str", "null", "int"])
def test_non_object_is_refused(data: object) -> None:
    with pytest.raises(ManifestError) as info:
        ModelManifest.from_dict(data)
    assert info.value.field == "manifest"


@pytest.mark.parametrize(
    "text",
    ["{", "", "not json", b"\xff\xfe\x00", '{"a": 1,}'],
    ids=["truncated", "empty", "words", "bad-utf8", "comma"],
)
def test_invalid_json_is_a_manifest_error(text: str | bytes) -> None:
    with pytest.raises(ManifestError, match="is not valid JSON") as info:
        ModelManifest.from_json(text)
    assert info.value.field == "manifest"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"minimum": -1.5', '"minimum": NaN', "input.minimum"),
        ('"maximum": 10.25', '"maximum": Infinity', "input.maximum"),
        ('"accuracy": 0.96', '"accuracy": -Infinity', "metrics.fp32.accuracy"),
        ("5.1", "NaN", "golden.inputs"),
    ],
    ids=["nan-minimum", "inf-maximum", "inf-accuracy", "nan-golden"],
)
def test_non_finite_json_literals_are_refused(
    make_manifest: Callable[..., ModelManifest], old: str, new: str, field: str
) -> None:
    text = make_manifest().to_json()
    assert old in text
    with pytest.raises(ManifestError) as info:
        ModelManifest.from_json(text.replace(old, new, 1))
    assert info.value.field == field


def test_manifest_error_is_a_validation_error(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        ModelManifest.from_dict(manifest_dict(labels=["one"]))


def test_an_empty_golden_set_is_refused(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ManifestError, match="empty self-test would pass any model"):
        ModelManifest.from_dict(manifest_dict(golden={"inputs": [], "labels": []}))


def test_duplicate_artifact_file_names_are_refused(manifest_dict: Callable[..., dict[str, Any]]) -> None:
    data = manifest_dict()
    data["artifacts"] = [data["artifacts"][0], dict(data["artifacts"][0])]
    with pytest.raises(ManifestError, match="file names must be unique"):
        ModelManifest.from_dict(data)


@pytest.mark.parametrize("accuracy", [1.5, -0.1, 7.5])
def test_accuracy_outside_zero_one_is_refused(manifest_dict: Callable[..., dict[str, Any]], accuracy: float) -> None:
    data = manifest_dict()
    variant = next(iter(data["metrics"]))
    data["metrics"][variant]["accuracy"] = accuracy
    with pytest.raises(ManifestError, match=r"accuracy: .* is outside \[0, 1\]"):
        ModelManifest.from_dict(data)


# --- the behaviour baseline (holdout confidence and predicted-class mix): optional, and strict when present ---


def _with_behaviour(data: dict[str, Any]) -> dict[str, Any]:
    data["baseline"]["holdout_rows"] = 30
    data["baseline"]["class_fractions"] = [0.3, 0.3, 0.4]
    return data


def test_a_behaviour_baseline_round_trips_and_an_older_one_still_parses(
    manifest_dict: Callable[..., dict[str, Any]],
) -> None:
    older = manifest_dict()
    assert ModelManifest.from_dict(older).to_dict() == older  # no new keys appear
    assert ModelManifest.from_dict(older).baseline.class_fractions is None
    newer = _with_behaviour(manifest_dict())
    manifest = ModelManifest.from_dict(newer)
    assert manifest.to_dict() == newer
    assert (manifest.baseline.holdout_rows, manifest.baseline.class_fractions) == (30, (0.3, 0.3, 0.4))
    del newer["baseline"]["class_fractions"]
    assert ModelManifest.from_dict(newer).baseline.holdout_rows == 30


BAD_BEHAVIOUR: list[Any] = [
    pytest.param(_set("baseline.holdout_rows", 0), "baseline.holdout_rows", id="holdout-rows-zero"),
    pytest.param(_set("baseline.holdout_rows", True), "baseline.holdout_rows", id="holdout-rows-bool"),
    pytest.param(_set("baseline.holdout_rows", 2.5), "baseline.holdout_rows", id="holdout-rows-float"),
    pytest.param(_delete("baseline.holdout_rows"), "baseline.class_fractions", id="classes-without-holdout-rows"),
    pytest.param(_set("baseline.class_fractions", [0.5, 0.5]), "baseline.class_fractions", id="classes-too-few"),
    pytest.param(_set("baseline.class_fractions", [0.5, 0.5, 0.5]), "baseline.class_fractions", id="classes-sum"),
    pytest.param(_set("baseline.class_fractions", [1.2, -0.2, 0.0]), "baseline.class_fractions", id="negative"),
    pytest.param(_set("baseline.class_fractions", [0.3, math.nan, 0.4]), "baseline.class_fractions", id="nan"),
    pytest.param(_set("baseline.class_fractions", "0.3,0.3,0.4"), "baseline.class_fractions", id="not-a-list"),
    pytest.param(_set("baseline.class_mix", [1.0]), "baseline", id="unknown-key"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_BEHAVIOUR)
def test_a_bad_behaviour_baseline_names_its_field(
    manifest_dict: Callable[..., dict[str, Any]], mutate: Mutation, field: str
) -> None:
    data = _with_behaviour(manifest_dict())
    mutate(data)
    with pytest.raises(ManifestError) as info:
        ModelManifest.from_dict(data)
    assert info.value.field == field


def _with_reliability(data: dict[str, Any]) -> dict[str, Any]:
    data = _with_behaviour(data)
    data["baseline"]["reliability"] = {"edges": [0.8, 0.95], "rows": [8, 10, 12], "errors": [3, 1, 0]}
    return data


def test_a_reliability_table_round_trips_and_a_manifest_without_one_still_parses(
    manifest_dict: Callable[..., dict[str, Any]],
) -> None:
    newer = _with_reliability(manifest_dict())
    manifest = ModelManifest.from_dict(newer)
    assert manifest.to_dict() == newer
    table = manifest.baseline.reliability
    assert table is not None
    assert (table.edges, table.rows, table.errors) == ((0.8, 0.95), (8, 10, 12), (3, 1, 0))
    assert ModelManifest.from_dict(_with_behaviour(manifest_dict())).baseline.reliability is None


BAD_RELIABILITY: list[Any] = [
    pytest.param(_set("baseline.reliability.rows", [8, 10, 11]), "baseline.reliability", id="not-the-holdout"),
    pytest.param(_set("baseline.reliability.errors", [9, 1, 0]), "baseline.reliability", id="errors-over-rows"),
    pytest.param(_set("baseline.reliability.errors", [3, 1]), "baseline.reliability", id="too-few-errors"),
    pytest.param(_set("baseline.reliability.edges", [0.95, 0.8]), "baseline.reliability", id="descending"),
    pytest.param(_set("baseline.reliability.edges", [0.8, 1.0]), "baseline.reliability", id="edge-at-one"),
    pytest.param(_set("baseline.reliability.edges", [0.8, "x"]), "baseline.reliability.edges", id="edge-text"),
    pytest.param(_set("baseline.reliability.rows", [8, 10, 12.0]), "baseline.reliability", id="float-rows"),
    pytest.param(_set("baseline.reliability.rows", [8, 10, True]), "baseline.reliability", id="bool-rows"),
    pytest.param(_set("baseline.reliability", [1, 2]), "baseline.reliability", id="not-an-object"),
    pytest.param(_delete("baseline.reliability.errors"), "baseline.reliability", id="missing-errors"),
    pytest.param(_set("baseline.reliability.bands", 3), "baseline.reliability", id="unknown-key"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_RELIABILITY)
def test_a_bad_reliability_table_names_its_field(
    manifest_dict: Callable[..., dict[str, Any]], mutate: Mutation, field: str
) -> None:
    data = _with_reliability(manifest_dict())
    mutate(data)
    with pytest.raises(ValidationError) as info:
        ModelManifest.from_dict(data)
    assert field in str(info.value)
