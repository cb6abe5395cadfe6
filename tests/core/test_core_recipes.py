"""Recipes: the real inference template renders completely, validates, and grants exactly the core's names."""

from __future__ import annotations

import base64
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeloop.core import names
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.core.recipes import (
    DEVICE_REQUIREMENTS,
    INFERENCE_ARCHIVE,
    PUBLISHER,
    RECIPE_FORMAT_VERSION,
    artifact_digest,
    inference_recipe_values,
    model_recipe,
    render_recipe,
)
from edgeloop.core.registry import RegistryRecord
from edgeloop.core.settings import DeviceConfig

TEMPLATE_PATH = (
    Path(__file__).resolve().parents[2] / "greengrass_components" / "com.edgeloop.Inference" / "recipe.template.json"
)
ARCHIVE_URI = "s3://edgeloop-artifacts/components/com.edgeloop.Inference/1.2.3/inference.zip"
THING_VARIABLE = "{iot:thingName}"
RecipeErrors = Callable[[dict[str, Any]], list[str]]


@pytest.fixture(scope="module")
def template() -> str:
    return TEMPLATE_PATH.read_text()


@pytest.fixture(scope="module")
def recipe(template: str) -> dict[str, Any]:
    return render_recipe(template, inference_recipe_values("1.2.3", ARCHIVE_URI))


def test_values_cover_every_placeholder_of_the_real_template(template: str) -> None:
    placeholders = set(string.Template(template).get_identifiers())
    assert placeholders == set(inference_recipe_values("1.2.3", ARCHIVE_URI))


def test_rendered_inference_recipe(recipe: dict[str, Any]) -> None:
    assert "${" not in str(recipe)
    assert recipe["RecipeFormatVersion"] == RECIPE_FORMAT_VERSION
    assert recipe["ComponentName"] == names.INFERENCE_COMPONENT
    assert recipe["ComponentVersion"] == "1.2.3"
    assert recipe["ComponentPublisher"] == PUBLISHER
    [manifest] = recipe["Manifests"]
    assert manifest["Artifacts"][0]["Uri"] == ARCHIVE_URI
    archive_dir = INFERENCE_ARCHIVE.removesuffix(".zip")
    assert f"/{archive_dir}/main.py" in manifest["Lifecycle"]["Run"]["Script"]
    assert manifest["Lifecycle"]["Run"]["Setenv"]["PYTHONPATH"].endswith(f"/{archive_dir}")


def test_default_configuration_is_the_device_config(recipe: dict[str, Any]) -> None:
    default = dict(recipe["ComponentConfiguration"]["DefaultConfiguration"])
    assert set(default.pop("accessControl")) == {
        "aws.greengrass.ipc.mqttproxy",
        "aws.greengrass.ShadowManager",
        "aws.greengrass.ipc.pubsub",
    }
    assert default == DeviceConfig().to_config()
    assert DeviceConfig.from_config(recipe["ComponentConfiguration"]["DefaultConfiguration"]) == DeviceConfig()


@pytest.mark.parametrize("thing", ["edge-dev-1", "Plant:7_line-2"])
def test_access_control_is_built_from_names(recipe: dict[str, Any], thing: str) -> None:
    acl = recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]
    policies = {service: next(iter(p.values())) for service, p in acl.items()}
    assert all(policy_id.startswith(f"{names.INFERENCE_COMPONENT}:") for p in acl.values() for policy_id in p)

    results, samples = policies["aws.greengrass.ipc.mqttproxy"]["resources"]
    assert results.replace(THING_VARIABLE, thing) == names.results_topic(thing)
    assert samples == f"edgeloop/things/{THING_VARIABLE}/samples/+", "one level for the seq range, no more"
    assert names.topic_matches(samples.replace(THING_VARIABLE, thing), names.samples_topic(thing, 41, 45))
    assert not names.topic_matches(samples.replace(THING_VARIABLE, thing), names.samples_topic("other", 41, 45))
    assert names.thing_from_results_topic(results.replace(THING_VARIABLE, thing)) == thing

    [shadow] = policies["aws.greengrass.ShadowManager"]["resources"]
    assert shadow.replace(THING_VARIABLE, thing) + "/update" == names.shadow_topic(thing, "update")
    assert f"/shadow/name/{names.HEALTH_SHADOW}" in shadow

    assert policies["aws.greengrass.ipc.pubsub"]["resources"] == [names.INPUTS_LOCAL_TOPIC]


def test_inference_recipe_passes_the_greengrass_schema(recipe: dict[str, Any], recipe_errors: RecipeErrors) -> None:
    assert recipe_errors(recipe) == []


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda r: r.pop("ComponentVersion"), id="no-version"),
        pytest.param(lambda r: r.update(Signature="x"), id="unknown-top-level-key"),
        pytest.param(lambda r: r.update(ComponentName="com edgeloop"), id="bad-component-name"),
        pytest.param(lambda r: r["Manifests"][0]["Artifacts"][0].pop("Uri"), id="artifact-without-uri"),
    ],
)
def test_schema_check_can_fail(
    template: str, recipe_errors: RecipeErrors, breakage: Callable[[dict[str, Any]], object]
) -> None:
    broken = render_recipe(template, inference_recipe_values("1.2.3", ARCHIVE_URI))
    breakage(broken)
    assert recipe_errors(broken) != []


@pytest.mark.parametrize("missing", sorted(inference_recipe_values("1.0.0", ARCHIVE_URI)))
def test_missing_placeholder_value_is_named(template: str, missing: str) -> None:
    values = inference_recipe_values("1.0.0", ARCHIVE_URI)
    del values[missing]
    with pytest.raises(ValidationError) as info:
        render_recipe(template, values)
    assert info.value.field == "recipe template"
    assert f"${{{missing}}}" in info.value.message


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", 'both \\" mixed', "line\nbreak\ttab", "unicode é ✓", "${NOT_A_PLACEHOLDER}"],
    ids=["quotes", "backslash", "escaped-quote", "control", "unicode", "dollar"],
)
def test_values_are_json_escaped(template: str, value: str) -> None:
    assert render_recipe('{"a": "${X}", "b": ["${X}"]}', {"X": value}) == {"a": value, "b": [value]}
    values = inference_recipe_values("1.0.0", f"s3://bucket/{value}.zip")
    assert render_recipe(template, values)["Manifests"][0]["Artifacts"][0]["Uri"] == f"s3://bucket/{value}.zip"


@pytest.mark.parametrize(
    ("text", "values", "needle"),
    [
        ('{"a": "${X"}', {"X": "1"}, "Invalid placeholder"),
        ('{"a": ${X}}', {"X": "bare"}, "does not render to JSON"),
        ('{"a": "${X}"', {"X": "1"}, "does not render to JSON"),
    ],
    ids=["unclosed-placeholder", "unquoted-value", "truncated-template"],
)
def test_broken_templates_raise_validation_errors(text: str, values: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle) as info:
        render_recipe(text, values)
    assert info.value.field == "recipe template"


def test_model_recipe(
    make_registry_record: Callable[..., RegistryRecord], make_manifest: Callable[..., ModelManifest]
) -> None:
    record, manifest = make_registry_record(version=3), make_manifest()
    recipe = model_recipe(record, manifest, manifest_bytes=manifest.to_json().encode())
    assert recipe["ComponentName"] == names.model_component_name(manifest.model_name)
    assert names.model_version_from_component(recipe["ComponentVersion"]) == record.version
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"] == {
        "modelName": record.model_name,
        "modelVersion": 3,
        "manifest": MANIFEST_FILE,
        "artifact": manifest.selected,
    }
    [platform] = recipe["Manifests"]
    assert [a["Uri"] for a in platform["Artifacts"]] == [record.artifact_uri, record.manifest_uri]
    assert all(a["Permission"]["Execute"] == "NONE" for a in platform["Artifacts"])
    assert platform["Artifacts"][0]["Digest"] == base64.b64encode(bytes.fromhex(record.sha256)).decode()
    assert platform["Artifacts"][1]["Digest"] == artifact_digest(manifest.to_json().encode())
    assert {a["Algorithm"] for a in platform["Artifacts"]} == {"SHA-256"}
    assert "holdout accuracy 0.9375" in recipe["ComponentDescription"]
    assert DeviceConfig(recipe["ComponentName"], recipe["ComponentVersion"]).modelComponentVersion == "3.0.0"


def test_model_recipe_passes_the_greengrass_schema(
    make_registry_record: Callable[..., RegistryRecord],
    make_manifest: Callable[..., ModelManifest],
    recipe_errors: RecipeErrors,
) -> None:
    manifest = make_manifest()
    signed = model_recipe(
        make_registry_record(signed=True), manifest, manifest_bytes=manifest.to_json().encode(), signature=b"sig"
    )
    assert recipe_errors(signed) == []


def test_a_signed_models_recipe_ships_the_signature_beside_the_manifest(
    make_registry_record: Callable[..., RegistryRecord], make_manifest: Callable[..., ModelManifest]
) -> None:
    record, manifest = make_registry_record(signed=True), make_manifest()
    recipe = model_recipe(record, manifest, manifest_bytes=manifest.to_json().encode(), signature=b"MEUC\n")
    signature = recipe["Manifests"][0]["Artifacts"][2]
    assert signature["Uri"] == record.signature_uri
    assert signature["Uri"].endswith("/manifest.json.sig")
    assert signature["Digest"] == artifact_digest(b"MEUC\n")


def test_the_same_inputs_render_the_same_recipe_so_a_retry_never_collides(
    make_registry_record: Callable[..., RegistryRecord], make_manifest: Callable[..., ModelManifest]
) -> None:
    record, manifest = make_registry_record(signed=True), make_manifest()

    def render() -> dict[str, Any]:
        return model_recipe(record, manifest, manifest_bytes=manifest.to_json().encode(), signature=b"s")

    assert render() == render()


@pytest.mark.parametrize(
    ("signed", "signature", "bytes_of", "field"),
    [(True, None, "same", "signature"), (False, b"s", "same", "signature"), (False, None, "other", "manifest_bytes")],
)
def test_model_recipe_refuses_mismatched_bytes_or_signature(
    make_registry_record: Callable[..., RegistryRecord],
    make_manifest: Callable[..., ModelManifest],
    signed: bool,
    signature: bytes | None,
    bytes_of: str,
    field: str,
) -> None:
    manifest = make_manifest()
    other = make_manifest(created_at="2027-01-01T00:00:00Z")
    data = (manifest if bytes_of == "same" else other).to_json().encode()
    with pytest.raises(ValidationError) as info:
        model_recipe(make_registry_record(signed=signed), manifest, manifest_bytes=data, signature=signature)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model_name": "other"}, "model_name"),
        ({"sha256": "f" * 64}, "sha256"),
        ({"artifact_uri": "s3://edgeloop-artifacts/models/digits/x/renamed.onnx"}, "artifact_uri"),
        ({"manifest_uri": "s3://edgeloop-artifacts/models/digits/x/manifest.yaml"}, "manifest_uri"),
    ],
)
def test_model_recipe_refuses_a_record_that_disagrees_with_its_manifest(
    make_registry_record: Callable[..., RegistryRecord],
    make_manifest: Callable[..., ModelManifest],
    overrides: dict[str, Any],
    field: str,
) -> None:
    manifest = make_manifest()
    with pytest.raises(ValidationError, match=f"^{field}:"):
        model_recipe(make_registry_record(**overrides), manifest, manifest_bytes=manifest.to_json().encode())


def test_device_requirements_match_the_device_extra() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["device"]
    assert tuple(extra) == DEVICE_REQUIREMENTS


def test_install_script_pins_every_device_requirement(recipe: dict[str, Any]) -> None:
    script = recipe["Manifests"][0]["Lifecycle"]["Install"]["Script"]
    for requirement in DEVICE_REQUIREMENTS:
        assert f"'{requirement}'" in script
