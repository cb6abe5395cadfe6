"""Every figure, key and default the docs state is the code's: device keys, exit codes, prices, policies, limits."""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import fields
from typing import Any

import pytest
from pages import README, ROOT, blocks, named_module, prose, subcommands, table_rows, text

from edgeloop.cli.main import build_parser
from edgeloop.core import errors, settings
from edgeloop.core.errors import ConfigError, EdgeloopError
from edgeloop.core.overrides import OVERRIDABLE_KEYS
from edgeloop.core.rollout import DEFAULT_POLICY
from edgeloop.core.settings import GRAPH_OPTIMIZATIONS, LOG_LEVELS, DeviceConfig

EN_DASH = "\N{EN DASH}"
"""Ranges in the device key table are written low, an en dash, high."""
DEVICE_ROW = re.compile(r"^\| `(\w+)` \| `(.*?)` \|\s*(.*?)\s*\| (shadow|no) \| .+ \|$", re.M)


def test_the_device_page_documents_every_configuration_key_with_its_default() -> None:
    rows = {key: (default, shadow) for key, default, _, shadow in DEVICE_ROW.findall(text("docs/device.md"))}
    defaults = DeviceConfig().to_config()
    assert set(rows) == set(defaults), "docs/device.md's key table and DeviceConfig differ"
    for key, (default, shadow) in rows.items():
        assert json.loads(default) == defaults[key], f"{key}: documented default {default}, code {defaults[key]!r}"
        assert (shadow == "shadow") == (key in OVERRIDABLE_KEYS), f"{key}: shadow column disagrees with the code"


def test_the_device_page_prose_states_the_same_defaults() -> None:
    defaults = DeviceConfig().to_config()
    stated = re.findall(r"`(\w+)`[^`.]{0,40}?\(default ([\d.]+)( MiB)?", prose(text("docs/device.md")))
    assert len(stated) >= 5
    for key, number, mib in stated:
        value = float(number) * (1024 * 1024 if mib else 1)
        assert value == defaults[key], f"docs/device.md says {key} defaults to {number}{mib}; the code, {defaults[key]}"


def _accepts(key: str, value: object) -> bool:
    """Whether DeviceConfig takes this one value (drift off when sizing driftMinRows, which it must not pass)."""
    extra: dict[str, object] = {"driftWindow": 0} if key == "driftMinRows" else {}
    try:
        DeviceConfig(**{key: value, **extra})  # type: ignore[arg-type]
    except ConfigError:
        return False
    return True


def test_the_device_page_ranges_are_the_ones_enforced() -> None:
    types = {f.name: str(f.type) for f in fields(DeviceConfig)}
    choices = {"graphOptimization": GRAPH_OPTIMIZATIONS, "logLevel": LOG_LEVELS}
    for key, _, bounds, _ in DEVICE_ROW.findall(text("docs/device.md")):
        if key in choices:
            assert re.findall(r"`(\w+)`", bounds) == list(choices[key]), key
            continue
        if not bounds.strip():
            continue
        low_text, high_text = bounds.split(EN_DASH)
        cast = int if types[key] == "int" else float
        low, high = cast(low_text), cast(high_text)
        step = 1 if cast is int else max(abs(high), 1) * 1e-6
        assert _accepts(key, low), f"{key}: {low} is refused, though the page says {bounds}"
        assert _accepts(key, high), f"{key}: {high} is refused, though the page says {bounds}"
        assert not _accepts(key, low - step), f"{key}: takes values below {bounds}"
        assert not _accepts(key, high + step), f"{key}: takes values above {bounds}"


def test_the_exit_code_table_is_the_errors_own() -> None:
    table = {int(row[0]): set(re.findall(r"`(\w+)`", row[2])) for row in table_rows(text("docs/cli.md"))[1:]}
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, EdgeloopError)]
    for cls in classes:
        assert cls.__name__ in table.get(cls.exit_code, set()), f"{cls.__name__} exits {cls.exit_code}"
    assert {n for names in table.values() for n in names} == {c.__name__ for c in classes}


def test_the_cost_table_is_the_pricing_in_the_code() -> None:
    pricing = named_module("docs/cost.md", "cost").Pricing()
    prices = {row[0]: float(row[1].split()[0]) for row in table_rows(text("docs/cost.md"))[1:]}
    fields_by_item = {
        "Connectivity": ["connectivity_per_million_minutes"],
        "Messaging": ["messaging_per_million"],
        "Device Shadow and registry": ["shadow_registry_per_million"],
        "Rules triggered; actions executed": ["rules_triggered_per_million", "actions_executed_per_million"],
        "S3 PUT (the rules' S3 actions)": ["s3_put_per_thousand"],
        "Greengrass core device (edge only)": ["greengrass_per_core_device_month"],
    }
    assert set(prices) == set(fields_by_item)
    for item, names in fields_by_item.items():
        assert all(getattr(pricing, name) == prices[item] for name in names), f"{item}: {prices[item]}"


def test_the_default_rollout_policy_block_is_the_code() -> None:
    (block,) = blocks(text("docs/rollouts.md"), "json")
    assert json.loads(block) == DEFAULT_POLICY.to_dict()
    summary = ", ".join(f"{r.name} {r.share:.0%} for {_duration(r.bake_s)}" for r in DEFAULT_POLICY.rings)
    assert summary.replace(", broad", ", then broad") in " ".join(text("docs/rollouts.md").split())


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def test_the_ring_deployment_pacing_is_the_job_configuration() -> None:
    from edgeloop.cloud.fleet import DEPLOYMENT_POLICIES, JOB_CONFIGURATION

    rate = JOB_CONFIGURATION["jobExecutionsRolloutConfig"]["exponentialRate"]
    (abort,) = JOB_CONFIGURATION["abortConfig"]["criteriaList"]
    timeout = JOB_CONFIGURATION["timeoutConfig"]["inProgressTimeoutInMinutes"]
    prose = " ".join(text("docs/rollouts.md").split())
    assert rate["incrementFactor"] == 2.0, "the docs say the rate doubles"
    for claim in (
        f"starts {rate['baseRatePerMinute']} devices a minute",
        f"after each {rate['rateIncreaseCriteria']['numberOfSucceededThings']} successes",
        f"aborts at {abort['thresholdPercentage']:g}% {abort['failureType']}",
        f"after {abort['minNumberOfExecutedThings']} executions",
        f"times out after {timeout} min",
        f"failureHandlingPolicy {DEPLOYMENT_POLICIES['failureHandlingPolicy']}",
    ):
        assert claim in prose, f"docs/rollouts.md should say {claim!r}"


def test_the_scenario_format_names_every_key_the_code_accepts() -> None:
    (example,) = blocks(text("docs/scenarios.md"), "yaml")
    scenario = named_module("docs/scenarios.md", "scenario")
    outages = named_module("docs/scenarios.md", "outages")
    keys = {*scenario.SCENARIO_KEYS, *outages.OUTAGE_KEYS, "kind", "at_s", "share", "magnitude"}
    missing = [key for key in keys if not re.search(rf"\b{key}:", example)]
    assert not missing, f"docs/scenarios.md's example lacks {missing}"
    assert all(kind in text("docs/scenarios.md") for kind in scenario.DRIFT_KINDS)


def test_the_scenario_example_is_a_valid_scenario() -> None:
    yaml = pytest.importorskip("yaml")
    (example,) = blocks(text("docs/scenarios.md"), "yaml")
    parsed = named_module("docs/scenarios.md", "scenario").Scenario.from_dict(yaml.safe_load(example))
    assert parsed.outages
    assert parsed.drift
    assert parsed.bad_candidates


def test_the_fleet_day_and_device_count_figures_are_the_code() -> None:
    from edgeloop.local.demo_options import MAX_DEVICES

    fleet_day = named_module("docs/scenarios.md", "scenario").built_in("fleet-day")
    cli = " ".join(text("docs/cli.md").split())
    assert f"{fleet_day.devices:,} devices" in cli
    assert f"({fleet_day.duration_s:,.0f} s)" in cli
    assert f"{fleet_day.devices:,} devices" in README.read_text(encoding="utf-8")
    demo = subcommands(build_parser())["demo"]
    devices, out = demo.get_default("devices"), demo.get_default("out")
    assert f"{devices} devices, 1 to {MAX_DEVICES}" in cli
    assert f"(defaults: {devices} devices, `./{out}/`)" in text("docs/demo.md")
    assert f"(`--devices`, 1-{MAX_DEVICES}, default {devices})" in README.read_text(encoding="utf-8")


def test_the_context_key_table_is_cdk_json_own() -> None:
    from infra import config

    documented = json.loads((ROOT / "cdk.json").read_text())["context"]["//"]
    entries = dict(line.split(": ", 1) for line in documented if line.startswith(config.KEY_PREFIX))
    rows = {row[0].strip("`"): row[1].replace("`", "") for row in table_rows(text("docs/infra.md"))}
    shown = {key: rows.get(key) for key in entries}
    assert shown == entries, "docs/infra.md's context keys differ from cdk.json's // entry"
    read = {v for k, v in vars(config).items() if k.startswith("CONTEXT_")}
    assert read == set(entries), "cdk.json documents other keys than infra/config.py reads"


def test_the_handler_environment_table_names_every_variable_and_default() -> None:
    rows = {row[0].strip("`"): row[2] for row in table_rows(text("docs/infra.md")) if row[0].startswith("`EDGELOOP_")}
    variables = {v for k, v in vars(settings).items() if k.startswith("ENV_")}
    assert set(rows) == variables
    trigger = settings.TriggerSettings(model_name="digits")
    defaults = {
        settings.ENV_SAMPLES_TABLE: trigger.samples_table,
        settings.ENV_RETRAINING_TABLE: trigger.retraining_table,
        settings.ENV_ROLLOUTS_TABLE: trigger.rollouts_table,
        settings.ENV_FLEET_HEALTH_TABLE: trigger.fleet_health_table,
        settings.ENV_EVENT_BUS_NAME: trigger.event_bus_name,
        settings.ENV_TRAINING_INSTANCE_TYPE: settings.DEFAULT_TRAINING_INSTANCE_TYPE,
        settings.ENV_TRAINING_MAX_RUNTIME_S: settings.DEFAULT_TRAINING_MAX_RUNTIME_S,
    }
    for variable, default in defaults.items():
        assert re.search(rf"\(default `?{default}`?\)", rows[variable]), f"{variable}: the default is {default}"


def _constant(dotted: str) -> Any:
    """A module-level constant by its dotted name, or by its name anywhere in edgeloop once its module moved.

    The docs quote the figure, not the module, so a module renamed by a refactor must not fail this test."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError):
        homes = [p for p in (ROOT / "edgeloop").rglob("*.py") if re.search(rf"^{name}\b.*=", p.read_text(), re.M)]
        assert len(homes) == 1, f"{name} is defined in {len(homes)} modules: {homes}"
        return getattr(importlib.import_module(".".join(homes[0].relative_to(ROOT).with_suffix("").parts)), name)


KIB = 1024
MIB = KIB * KIB
FIGURES = [
    ("docs/device.md", "IoT Core's {} KB limit", "edgeloop.core.records.IOT_CORE_MAX_PAYLOAD_BYTES", KIB),
    ("docs/device.md", "filling whole {} KB billing units", "edgeloop.core.records.BILLING_UNIT_BYTES", KIB),
    ("docs/device.md", "below {} publishes/s", "edgeloop.core.backoff.IOT_CORE_PUBLISHES_PER_S", 1),
    ("docs/device.md", "the {} KB shadow limit", "edgeloop.core.health.SHADOW_MAX_BYTES", KIB),
    ("docs/device.md", "at {} results", "edgeloop.device.runtime.COMMIT_MAX_RESULTS", 1),
    ("docs/device.md", "at least {} characters", "edgeloop.core.privacy.MIN_SALT_CHARS", 1),
    ("docs/device.md", "cut to {} hex digits", "edgeloop.core.privacy.HASH_HEX_CHARS", 1),
    ("docs/device.md", "floored at {}", "edgeloop.core.drift.PSI_EPSILON", 1),
    ("docs/device.md", "less the {} quantile", "edgeloop.core.drift.NOISE_QUANTILE", 1),
    ("docs/feedback-loop.md", "{} KB limit", "edgeloop.core.records.IOT_CORE_MAX_PAYLOAD_BYTES", KIB),
    ("docs/feedback-loop.md", "at most {} MiB of JSON", "edgeloop.core.compression.MAX_DECOMPRESSED_BYTES", MIB),
    ("docs/feedback-loop.md", "more than {} MiB of JSON", "edgeloop.core.compression.MAX_DECOMPRESSED_BYTES", MIB),
    ("docs/models.md", "manifest over {} KB", "edgeloop.cloud.signing.KMS_RAW_MESSAGE_LIMIT", KIB),
    ("docs/demo.md", "threshold is {} holdout accuracy", "edgeloop.local.stack.AUTO_APPROVE_MIN_ACCURACY", 1),
    ("docs/demo.md", "every {} s on the wall clock", "edgeloop.local.demo.TICK_REAL_S", 1),
    ("docs/demo.md", "and {} s on the demo's clock", "edgeloop.local.demo.TICK_SIM_S", 1),
    ("docs/demo.md", "a generous ratio of {}", "edgeloop.local.demo.DEMO_P99_RATIO", 1),
    ("docs/scenarios.md", "reported {} confidences", "edgeloop.cloud.rollout_control.BASELINE_MIN_CONFIDENCES", 1),
]


@pytest.mark.parametrize(("page", "phrase", "constant", "unit"), FIGURES, ids=lambda v: str(v)[:40])
def test_each_figure_in_the_prose_is_the_constant(page: str, phrase: str, constant: str, unit: int) -> None:
    stated = phrase.format(_shown(_constant(constant) / unit))
    assert stated in " ".join(text(page).split()), f"{page} should say {stated!r} ({constant})"


def _shown(value: float) -> str:
    """A figure as the docs write it: 128, 0.25, 1e-4."""
    if value == int(value):
        return str(int(value))
    return f"{value:.0e}".replace("e-0", "e-") if abs(value) < 1e-3 else f"{value:g}"


def test_the_training_usage_shows_the_defaults() -> None:
    from edgeloop.training.config import TrainingConfig

    defaults = {f.name: f.default for f in fields(TrainingConfig)}
    (usage, *_) = blocks(text("docs/training.md"), "")
    shown = re.findall(r"\[--([\w-]+) ([\d.]+)\]", usage)
    assert len(shown) >= 6
    for flag, value in shown:
        default = defaults[flag.replace("-", "_")]
        default = default[0] if isinstance(default, tuple) else default
        assert float(value) == default, f"docs/training.md shows --{flag} {value}; the default is {default}"
