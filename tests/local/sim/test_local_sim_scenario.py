"""Scenario documents: the built-ins are valid, every rule names its key, and the drift timeline reads right."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.local.sim.scenario import BUILT_IN, DEFAULT_LABEL_DELAY_S, Scenario, built_in

BASE: dict[str, Any] = {
    "name": "t",
    "dataset": "builtin:digits",
    "initial_rows": 600,
    "devices": 3,
    "duration_s": 100.0,
    "drift": [{"kind": "noise", "at_s": 50, "share": 0.5, "magnitude": 2}],
}


def with_(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def test_every_built_in_is_valid() -> None:
    for name in BUILT_IN:
        scenario = built_in(name)
        assert scenario.name == name
    assert built_in("drift").drift_starts_at_s == 900.0


def test_defaults_and_parsed_values() -> None:
    scenario = Scenario.from_dict(BASE)
    assert (scenario.requests_per_s, scenario.seed, scenario.label_column) == (1.0, 0, "label")
    assert scenario.drift[0].share == 0.5
    assert Scenario.from_dict(with_(drift=[])).drift_starts_at_s is None
    assert (scenario.outages, scenario.bad_candidates, scenario.step_s, scenario.canary_devices) == ((), (), 30.0, 1)


def test_outages_and_bad_candidates_parse() -> None:
    scenario = Scenario.from_dict(
        with_(
            outages=[{"kind": "partition", "scope": "ring", "ring": "canary", "from_s": 10, "to_s": 20}],
            bad_candidates=[{"kind": "tampered", "at_s": 5}],
        )
    )
    assert scenario.outages[0].ring == "canary"
    assert scenario.bad_candidates[0].kind == "tampered"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (with_(colour="red"), "scenario", "unknown key(s) ['colour']"),
        (with_(devices=0), "scenario.devices", ">= 1"),
        (with_(devices=5000), "devices", "outside"),
        (with_(duration_s=-1), "duration_s", "outside"),
        (with_(initial_rows=5), "initial_rows", ">= 10"),
        (with_(drift=[{"kind": "warp", "at_s": 1, "magnitude": 1}]), "scenario.drift[0].kind", "'warp'"),
        (with_(drift=[{"kind": "shift", "at_s": 1, "magnitude": 1, "share": 0}]), "scenario.drift[0].share", "outside"),
        (with_(drift=[{"kind": "shift", "at_s": 500, "magnitude": 1}]), "drift[].at_s", "not before duration_s"),
        (with_(drift=[{"kind": "concept", "at_s": 1, "magnitude": 1.5}]), "scenario.drift[0].magnitude", "whole"),
        (with_(drift=[{"kind": "shift", "at_s": 1, "magnitude": 1, "when": 3}]), "scenario.drift[0]", "unknown"),
        (with_(retraining={"min_new_labels": "many"}), "scenario.retraining.min_new_labels", "integer"),
        (with_(retraining={"min_new_labels": 1.5}), "scenario.retraining.min_new_labels", "integer"),
        (with_(retraining={"max_labels": 3}), "scenario.retraining", "unknown"),
        (with_(samplers=["low_confidence"]), "scenario.samplers", "object"),
        (with_(outages=[{"kind": "cut", "from_s": 1, "to_s": 2}]), "scenario.outages[0].kind", "'cut'"),
        (with_(outages=[{"kind": "partition", "from_s": 450, "to_s": 460}]), "outages[].from_s", "not before"),
        (with_(bad_candidates=[{"kind": "evil", "at_s": 1}]), "scenario.bad_candidates[0].kind", "'evil'"),
        (with_(bad_candidates=[{"kind": "slow", "at_s": 1, "why": 1}]), "scenario.bad_candidates[0]", "unknown"),
        (with_(step_s=0.5), "step_s", "outside"),
        (with_(canary_devices=50), "canary_devices", "outside"),
        (with_(forward_interval_s=0), "forward_interval_s", "outside"),
        (with_(device_config=[1]), "scenario.device_config", "object"),
        (with_(device_config={"healthIntervalSecs": 60}), "device_config", "healthIntervalSecs"),
        (with_(device_config={"driftWindow": "big"}), "device_config", "driftWindow"),
    ],
)
def test_a_bad_scenario_names_its_key(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Scenario.from_dict(data)
    assert info.value.field == field
    assert message in info.value.message


def test_an_unknown_built_in_lists_the_ones_there_are() -> None:
    with pytest.raises(
        ValidationError, match=r"'drfit' is not a built-in scenario; expected one of \['drift', 'fleet-day'\]"
    ):
        built_in("drfit")


FILE: dict[str, Any] = {
    "dataset": "sea.csv",
    "label_column": "label",
    "exclude_columns": ["t", "id"],
    "initial_rows": 100,
    "drift_at_rows": [300, 600],
    "devices": 2,
    "requests_per_s": 2.0,
}


def file_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(FILE)
    data.update(changes)
    return data


def test_a_file_scenario_needs_only_the_data_keys(tmp_path: Path) -> None:
    scenario = Scenario.from_dict(FILE, base_dir=tmp_path)
    assert scenario.dataset == str(tmp_path / "sea.csv"), "relative to the scenario file's folder"
    assert scenario.name == "sea", "named after the file"
    assert scenario.is_file
    assert scenario.duration_s is None, "streamed once: the runner fixes the duration from the file"
    assert (scenario.exclude_columns, scenario.drift_at_rows) == (("t", "id"), (300, 600))
    assert (scenario.family, scenario.label_delay_s) == ("auto", DEFAULT_LABEL_DELAY_S)
    with pytest.raises(ValidationError, match="not known until the file is loaded"):
        _ = scenario.run_duration_s


def test_an_absolute_dataset_path_stays_and_keys_override_defaults(tmp_path: Path) -> None:
    data = file_with(dataset="/data/x.parquet", family="trees", label_delay_s=0, duration_s=60.0, name="n")
    scenario = Scenario.from_dict(data, base_dir=tmp_path)
    assert scenario.dataset == "/data/x.parquet"
    assert (scenario.family, scenario.label_delay_s, scenario.run_duration_s) == ("trees", 0.0, 60.0)


def test_built_ins_keep_the_mlp_and_need_a_duration() -> None:
    assert Scenario.from_dict(BASE).family == "mlp"
    assert all(built_in(name).family == "mlp" for name in BUILT_IN)
    assert not Scenario.from_dict(BASE).is_file
    without = {k: v for k, v in BASE.items() if k != "duration_s"}
    with pytest.raises(ValidationError, match="duration_s: is required for a built-in set"):
        Scenario.from_dict(without)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (file_with(dataset="sea.txt"), "dataset", "neither builtin:<name> nor a .csv"),
        (file_with(dataset="builtin:mnist", name="m"), "dataset", "the built-in sets are"),
        (file_with(family="forest"), "family", "expected one of ['mlp', 'trees', 'linear', 'auto']"),
        (file_with(family=3), "scenario.family", "string"),
        (file_with(drift_at_rows=[600, 300]), "drift_at_rows", "strictly increasing"),
        (file_with(drift_at_rows=[300, 300]), "drift_at_rows", "strictly increasing"),
        (file_with(drift_at_rows=[100]), "drift_at_rows", "not after initial_rows 100"),
        (file_with(drift_at_rows=[1.5]), "scenario.drift_at_rows", "row indices"),
        (file_with(drift_at_rows=[True]), "scenario.drift_at_rows", "row indices"),
        (file_with(drift_at_rows=300), "scenario.drift_at_rows", "list"),
        (file_with(exclude_columns=["t", "t"]), "exclude_columns", "repeats a name"),
        (file_with(exclude_columns=["label"]), "exclude_columns", "the label"),
        (file_with(exclude_columns=[""]), "scenario.exclude_columns", "non-empty strings"),
        (file_with(exclude_columns=[1]), "scenario.exclude_columns", "non-empty strings"),
        (file_with(label_delay_s=-1), "label_delay_s", "outside"),
        (file_with(label_delay_s=float("nan")), "scenario.label_delay_s", "finite"),
        (with_(drift_at_rows=[700]), "drift_at_rows", "built-in set"),
        (with_(exclude_columns=["x"]), "exclude_columns", "built-in set"),
        ({k: v for k, v in BASE.items() if k != "name"}, "scenario.name", "required"),
    ],
)
def test_a_bad_file_key_names_itself(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Scenario.from_dict(data)
    assert info.value.field == field
    assert message in info.value.message
