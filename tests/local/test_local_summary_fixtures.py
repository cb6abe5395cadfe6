"""The summary snapshots in tests/events/ are what the runners write today.

Each snapshot is checked for the summary's own invariants, and (slow: each run takes the runner's time) against
a fresh run of the same runner at the same settings (tests/events/make_summaries.py): the same recursive key sets,
value types and list element shapes. A runner whose summary gains, loses or renames a key fails here until the
snapshots are made again with `PYTHONPATH=. python tests/events/make_summaries.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from events.make_summaries import DEMO_DEVICES, DRIFT, FLEET, RUNNERS, run
from support import load_event

NUMBER, NULL = "number", "null"


def shape(value: Any) -> Any:
    """The structure of a JSON value: a dict's keys with their shapes, a list's merged element shape, a type name."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = _merge(merged, shape(item))
        return [merged] if value else []
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "bool"
    return NUMBER if isinstance(value, int | float) else type(value).__name__


def _merge(a: Any, b: Any) -> Any:
    """One shape for two list elements: dict keys united, null and empty lists giving way to what the other has."""
    if a is None or a == NULL or a == []:
        return b
    if b == NULL or b == []:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        return {key: _merge(a.get(key), b.get(key)) for key in [*a, *(k for k in b if k not in a)]}
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0], b[0])]
    return a


def differences(expected: Any, actual: Any, where: str = "summary") -> list[str]:
    """Where two shapes disagree; null agrees with any type (a figure a run had nothing to compute from)."""
    if NULL in (expected, actual):
        return []
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = [f"{where}: key {key!r} only in the snapshot" for key in expected.keys() - actual.keys()]
        found += [f"{where}: key {key!r} only in the fresh run" for key in actual.keys() - expected.keys()]
        for key in expected.keys() & actual.keys():
            found += differences(expected[key], actual[key], f"{where}.{key}")
        return sorted(found)
    if isinstance(expected, list) and isinstance(actual, list):
        if not expected or not actual:
            return []
        return differences(expected[0], actual[0], f"{where}[]")
    if expected != actual:
        return [f"{where}: {_kind(expected)} in the snapshot, {_kind(actual)} in the fresh run"]
    return []


def _kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else str(value)


# --- the shape comparison itself ------------------------------------------------------------------------------


def test_a_renamed_added_or_retyped_key_is_named_wherever_it_sits() -> None:
    snapshot = load_event("summary_fleet")
    fresh = load_event("summary_fleet")
    assert differences(shape(snapshot), shape(fresh)) == []
    fresh["reliability"]["records_missing"] = fresh["reliability"].pop("records_lost")
    fresh["timeline"]["points"][3]["extra"] = 1
    fresh["rollouts"][0]["decisions"][0]["ring"] = "canary"
    fresh["run"]["steps"] = None
    assert differences(shape(snapshot), shape(fresh)) == [
        "summary.reliability: key 'records_lost' only in the snapshot",
        "summary.reliability: key 'records_missing' only in the fresh run",
        "summary.rollouts[].decisions[].ring: number in the snapshot, str in the fresh run",
        "summary.timeline.points[]: key 'extra' only in the fresh run",
    ]


def test_shapes_merge_list_elements_and_let_null_stand_for_any_type() -> None:
    assert shape([{"a": 1, "b": None}, {"a": 2.5, "b": "x"}]) == [{"a": NUMBER, "b": "str"}]
    assert shape({"x": [], "y": True}) == {"x": [], "y": "bool"}
    assert differences(shape({"x": []}), shape({"x": [1]})) == []
    assert differences(shape({"x": None}), shape({"x": {"y": 1}})) == []
    assert differences(shape({"x": [1]}), shape({"x": ["1"]})) == [
        "summary.x[]: number in the snapshot, str in the fresh run"
    ]


# --- each summary's own invariants ----------------------------------------------------------------------------


def check_demo(summary: Mapping[str, Any]) -> None:
    """The plain demo: every device answered on the final version, nothing lost, one completed rollout."""
    devices, model, records = summary["devices"], summary["model"], summary["records"]
    assert [d["thing_name"] for d in devices] == [f"edgeloop-device-{i:03d}" for i in range(1, DEMO_DEVICES + 1)]
    assert records["produced"] == records["delivered"] > 0
    assert records["lost"] == 0
    for device in devices:
        assert device["model_version"] == device["health"]["model_version"] == model["version"]
        assert device["results_delivered"] == device["inferences"] > 0
        assert 0.0 <= device["stream_accuracy"] <= 1.0
    assert [(r["version"], r["outcome"]) for r in summary["rollouts"]] == [(model["version"], "completed")]
    assert summary["run"]["injected_bad_versions"] == []


def check_scenario(summary: Mapping[str, Any], scenario: Mapping[str, Any]) -> None:
    """A stepped scenario: nothing lost or counted twice, a timeline over the run, cumulative counters."""
    reliability, timeline, run_ = summary["reliability"], summary["timeline"], summary["run"]
    assert (run_["scenario"], run_["devices"], run_["simulated_s"]) == (
        scenario["name"], scenario["devices"], scenario["duration_s"],
    )  # fmt: skip
    assert reliability["records_produced"] == reliability["records_delivered"] > 0
    assert reliability["records_lost"] == reliability["duplicates_ingested"] == 0
    assert reliability["answers_received"] + reliability["requests_refused"] == reliability["requests"]
    points = timeline["points"]
    times = [p["t_s"] for p in points]
    assert times == sorted(times)
    assert timeline["step_s"] == scenario.get("step_s", 30.0)
    assert times[0] == 0.0
    step, duration = timeline["step_s"], scenario["duration_s"]
    assert duration - step <= times[-1] < duration, "each point is a step that starts within the scenario's time"
    for key in (
        "produced",
        "delivered",
        "sent_bytes_incl_shadow",
        "sent_messages_incl_shadow",
        "raw_bytes",
        "raw_messages",
    ):
        series = [p[key] for p in points]
        assert series == sorted(series), f"{key} is cumulative"
    assert points[-1]["produced"] == reliability["records_produced"]
    assert sum(points[-1]["devices_by_version"].values()) == scenario["devices"]
    assert [e["t_s"] for e in timeline["events"]] == sorted(e["t_s"] for e in timeline["events"])
    assert summary["cost"]["edge_usd_per_device_month"] < summary["cost"]["raw_usd_per_device_month"]


def check_drift(summary: Mapping[str, Any]) -> None:
    """The drift scenario: noticed after it began, retrained, recovered, within the sample budget."""
    check_scenario(summary, DRIFT)
    loop = summary["loop"]
    assert loop["drift_detected_at_s"] >= DRIFT["drift"][0]["at_s"]
    assert loop["retrain_triggered_at_s"] >= loop["drift_detected_at_s"]
    assert loop["new_version"] >= 2
    assert loop["recovered_accuracy"] > loop["post_drift_accuracy"]
    assert loop["recovered_accuracy"] >= loop["oracle_accuracy"] - 0.02
    assert loop["false_alarms"] == 0
    assert loop["detection_delay_rows"] > 0
    assert 0 < loop["labelled"] <= loop["samples_uploaded"], "labels come label_delay_s after their samples"
    rollouts = [(r["version"], r["outcome"]) for r in summary["rollouts"]]
    assert rollouts == [(v, "completed") for v in range(1, loop["new_version"] + 1)]


def check_fleet(summary: Mapping[str, Any]) -> None:
    """The bad day: the outages counted, both bad candidates stopped in the canary, the fleet on v1 at the end."""
    check_scenario(summary, FLEET)
    outcomes = [(r["version"], r["outcome"], r["bad_kind"]) for r in summary["rollouts"]]
    assert outcomes == [(1, "completed", None), (2, "reverted", "inaccurate"), (3, "reverted", "selftest")]
    assert [r["rings_reached"] for r in summary["rollouts"][1:]] == [["canary"], ["canary"]]
    assert summary["timeline"]["points"][-1]["devices_by_version"] == {"1": FLEET["devices"]}
    assert summary["reliability"]["outage_s"] == sum(o["to_s"] - o["from_s"] for o in FLEET["outages"])
    kinds = {e["kind"] for e in summary["timeline"]["events"]}
    assert {"outage_start", "outage_end", "restart", "rollout_start", "rollout_end", "decision"} <= kinds


CHECKS = {"demo": check_demo, "drift": check_drift, "fleet": check_fleet}


def test_every_runner_has_a_snapshot_and_a_check() -> None:
    assert set(CHECKS) == set(RUNNERS)
    for name in RUNNERS:
        assert (Path(__file__).parents[1] / "events" / f"summary_{name}.json").is_file()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_snapshot_keeps_its_summary_invariants(name: str) -> None:
    CHECKS[name](load_event(f"summary_{name}"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_each_snapshot_has_the_structure_the_runner_writes_today(name: str, tmp_path: Path) -> None:
    fresh = run(name, tmp_path)
    CHECKS[name](fresh)
    stale = differences(shape(load_event(f"summary_{name}")), shape(fresh))
    remake = f"PYTHONPATH=. python tests/events/make_summaries.py {name}"
    assert stale == [], f"summary_{name}.json is stale ({'; '.join(stale)}): run `{remake}`"
