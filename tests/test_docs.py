"""README.md and docs/ state only what is true: every figure, key, path, link and command is checked here."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from edgeloop.cli.main import build_parser
from edgeloop.core import errors, settings
from edgeloop.core.errors import ConfigError, EdgeloopError
from edgeloop.core.overrides import OVERRIDABLE_KEYS
from edgeloop.core.rollout import DEFAULT_POLICY
from edgeloop.core.settings import GRAPH_OPTIMIZATIONS, LOG_LEVELS, DeviceConfig

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 250
TOP_DIRS = ("edgeloop/", "functions/", "infra/", "tests/", "benchmarks/", "greengrass_components/", "docs/", ".ci/")
EN_DASH = "\N{EN DASH}"
"""Ranges in the device key table are written low, an en dash, high."""
DEVICE_ROW = re.compile(r"^\| `(\w+)` \| `(.*?)` \|\s*(.*?)\s*\| (shadow|no) \| .+ \|$", re.M)


def text(page: str) -> str:
    """One documentation page, by path from the repository root."""
    return (ROOT / page).read_text(encoding="utf-8")


def spans(source: str) -> list[str]:
    """Every inline code span of a markdown text, fenced blocks left out."""
    return re.findall(r"`([^`\n]+)`", prose(source))


def prose(source: str) -> str:
    """A markdown text without its fenced code blocks."""
    kept, fenced = [], False
    for line in source.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def blocks(source: str, lang: str | None = None) -> list[str]:
    """The bodies of the fenced code blocks, in order; with lang, only those of that language ("" for none)."""
    found: list[str] = []
    opened: str | None = None
    body: list[str] = []
    for line in source.splitlines():
        if opened is None and line.startswith("```"):
            opened, body = line[3:].strip(), []
        elif opened is not None and line.strip() == "```":
            if lang is None or opened == lang:
                found.append("\n".join(body) + "\n")
            opened = None
        elif opened is not None:
            body.append(line)
    return found


def table_rows(source: str) -> list[list[str]]:
    """The cells of every markdown table row, separator rows left out."""
    rows = [line.strip().strip("|").split(" | ") for line in source.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows if not set(row[0]) <= set("-| ")]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def named_module(page: str, suffix: str) -> Any:
    """The module a page names as the home of something (the first `edgeloop...` name ending as given)."""
    for span in spans(text(page)):
        name = span.removesuffix(".py").replace("/", ".")
        if name.startswith("edgeloop.") and name.endswith(suffix):
            return importlib.import_module(name)
    raise AssertionError(f"{page} names no module ending in {suffix!r}")


def test_the_readme_is_a_short_front_door() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference material into docs/"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci_command = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    shown = [block.strip() for block in blocks(README.read_text(encoding="utf-8"), "bash")]
    assert ci_command in shown, ".ci/run and README.md disagree"


def test_the_readme_links_every_docs_page() -> None:
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", README.read_text(encoding="utf-8")))
    assert linked == {f"docs/{page.name}" for page in DOCS.glob("*.md")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target} resolves to nothing"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading #{anchor} in {linked.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_path_exists(page: Path) -> None:
    source = page.read_text(encoding="utf-8")
    lines = [line for block in blocks(source, "") for line in block.splitlines()]
    layout = [line.split()[0] for line in lines if line.startswith(TOP_DIRS)]
    named = [s for s in spans(source) if s.startswith(TOP_DIRS) and re.fullmatch(r"[\w./-]+", s)]
    missing = [path for path in {*named, *layout} if not (ROOT / path).exists()]
    assert not missing, f"{page.name} names paths that do not exist: {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_module_and_class_exists(page: Path) -> None:
    missing = []
    for name in {s for s in spans(page.read_text(encoding="utf-8")) if re.fullmatch(r"edgeloop(\.\w+)+", s)}:
        if not _resolves(name):
            missing.append(name)
    assert not missing, f"{page.name} names modules or attributes that do not exist: {sorted(missing)}"


def _resolves(name: str) -> bool:
    """A dotted name is a module, or an attribute chain below the longest module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


def test_every_protocol_is_in_the_ports_page() -> None:
    named = set(spans(text("docs/ports.md")))
    missing = []
    for source in sorted((ROOT / "edgeloop").rglob("*.py")):
        module = ".".join(source.relative_to(ROOT).with_suffix("").parts)
        for cls in re.findall(r"^class (\w+)\(.*\bProtocol\b", source.read_text(encoding="utf-8"), flags=re.M):
            if f"{module}.{cls}" not in named:
                missing.append(f"{module}.{cls}")
    assert not missing, f"docs/ports.md does not name these ports: {missing}"


def test_every_port_row_names_an_adapter_and_a_contract_suite() -> None:
    ports = [row for row in table_rows(text("docs/ports.md")) if len(row) == 4 and row[0] != "Port"]
    assert ports
    for port, real, fake, suite in ports:
        assert "`" in real, f"{port}: no real adapter named"
        assert "`" in fake, f"{port}: no fake named"
        assert re.search(r"`tests/\S+\.py`", suite), f"{port}: no contract suite named"


def test_every_adapter_named_beside_a_port_has_the_ports_methods() -> None:
    rows = [row for row in table_rows(text("docs/ports.md")) if len(row) == 4 and row[0] != "Port"]
    for port_cell, real, fake, _ in rows:
        port = _attribute(port_cell.strip("`"))
        methods = {name for name, value in vars(port).items() if callable(value) and not name.startswith("_")}
        assert methods, f"{port_cell} declares no methods"
        for name in re.findall(r"`(edgeloop\.[\w.]+)`", f"{real} {fake}"):
            lacking = sorted(m for m in methods if not callable(getattr(_attribute(name), m, None)))
            assert not lacking, f"{name} lacks {port.__name__}'s {lacking}"


def _attribute(dotted: str) -> Any:
    """A class named by its module path and name."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


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


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    if parser.get_default("forwards_arguments"):  # `edgeloop train` hands its options to the training entry point
        from edgeloop.training.conventions import _parser

        parser = _parser()
    return {option for action in parser._actions for option in action.option_strings}


def documented_commands() -> list[tuple[str, str]]:
    """Every `edgeloop ...` command line shown in the README and docs/, with the page it is on."""
    found = []
    for page in PAGES:
        source = page.read_text(encoding="utf-8")
        wrapped = [re.sub(r"\n\s+(?=\[)", " ", block) for block in blocks(source)]  # usage lines that wrap
        lines = [*spans(source), *(line for block in wrapped for line in block.splitlines())]
        found += [(page.name, line.split("#")[0].strip()) for line in lines if re.match(r"edgeloop( |$)", line)]
    return found


@pytest.mark.parametrize(("page", "command"), documented_commands())
def test_every_documented_command_exists(page: str, command: str) -> None:
    parsers = [build_parser()]
    for token in command.split()[1:]:
        token = token.strip("[]().,")
        if token.startswith("--"):
            option = token.split("=")[0]
            assert all(option in _options(p) for p in parsers), f"{page}: {command}: no option {option}"
        elif token and _subcommands(parsers[0]) and not token.startswith(("<", ".")):
            known = _subcommands(parsers[0])
            names = token.split("|")
            assert all(name in known for name in names), f"{page}: {command}: no subcommand {token}"
            parsers = [known[name] for name in names]


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
    from edgeloop.local.demo import MAX_DEVICES

    fleet_day = named_module("docs/scenarios.md", "scenario").built_in("fleet-day")
    cli = " ".join(text("docs/cli.md").split())
    assert f"{fleet_day.devices:,} devices" in cli
    assert f"({fleet_day.duration_s:,.0f} s)" in cli
    assert f"{fleet_day.devices:,} devices" in README.read_text(encoding="utf-8")
    demo = _subcommands(build_parser())["demo"]
    devices, out = demo.get_default("devices"), demo.get_default("out")
    assert f"{devices} devices, 1 to {MAX_DEVICES}" in cli
    assert f"(defaults: {devices} devices, `./{out}/`)" in text("docs/demo.md")
    assert f"(`--devices`, default {devices})" in README.read_text(encoding="utf-8")


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
    """A module-level constant by its dotted name (a moved module fails here, naming itself)."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


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
