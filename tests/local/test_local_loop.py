"""The closed loop on the local stack: drift detected after it begins, samples labelled, a retrained version
rolled out, and accuracy back up — on a shortened drift scenario (the built-in one runs an hour simulated)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeloop.cli.demo import load_scenario
from edgeloop.cli.main import main
from edgeloop.core.errors import EdgeloopError, UsageError, ValidationError
from edgeloop.local import scoring
from edgeloop.local.loop import SAMPLE_BYTES_PER_DEVICE, run_scenario
from edgeloop.local.sim.scenario import BUILT_IN, Scenario

SHORT: dict[str, Any] = {
    **BUILT_IN["drift"],
    "name": "drift-short",
    "devices": 3,
    "duration_s": 1800.0,
    "drift": [{"kind": "shift", "at_s": 600.0, "share": 1.0, "magnitude": 1.5}],
    "retraining": {"min_new_labels": 400, "drift_for_s": 240.0, "min_labels_on_drift": 50, "cooldown_s": 7200.0},
}


@pytest.mark.slow
def test_a_drifted_fleet_is_noticed_retrained_and_recovers(tmp_path: Path) -> None:
    summary = run_scenario(Scenario.from_dict(SHORT), tmp_path, lambda message: None)
    loop = summary["loop"]
    assert loop["drift_detected_at_s"] >= 600.0, "never before the drift event"
    assert loop["retrain_triggered_at_s"] >= loop["drift_detected_at_s"]
    assert loop["new_version"] >= 2
    assert loop["pre_drift_accuracy"] > 0.9
    assert loop["post_drift_accuracy"] < loop["pre_drift_accuracy"] - 0.1, "the shift hurts the first model"
    assert loop["recovered_accuracy"] > loop["post_drift_accuracy"] + 0.1, "the retrained one recovers"
    assert loop["sample_bytes_uploaded"] <= SHORT["devices"] * SAMPLE_BYTES_PER_DEVICE * 1.2, "the daily budget holds"
    assert loop["sample_bytes_uploaded"] * 10 <= loop["raw_equivalent_bytes"]
    assert 0 < loop["labelled"] <= loop["samples_uploaded"], "labels come label_delay_s after their samples"
    assert loop["false_alarms"] == 0
    assert loop["drift_detected_at_row"] == loop["changes"][0]["detected_at_row"] > loop["changes"][0]["at_row"]
    assert loop["detection_delay_rows"] > 0
    assert loop["retrains"] >= 1
    assert loop["recovered_accuracy"] >= loop["oracle_accuracy"] - 0.02, "within 2 points of the oracle"
    outcomes = [(r["version"], r["outcome"]) for r in summary["rollouts"]]
    assert outcomes == [(v, "completed") for v in range(1, loop["new_version"] + 1)], "every retrain reached the fleet"
    assert json.loads((tmp_path / "summary.json").read_text())["loop"] == loop
    assert "Accuracy timeline" in (tmp_path / "report.html").read_text()


def test_scenario_files_and_names_are_loaded_or_refused_by_name(tmp_path: Path) -> None:
    assert load_scenario("drift").name == "drift"
    (tmp_path / "s.json").write_text(json.dumps(SHORT))
    (tmp_path / "s.yaml").write_text(
        "name: y\ndataset: builtin:digits\ninitial_rows: 100\ndevices: 2\nduration_s: 60\n"
    )
    assert load_scenario(str(tmp_path / "s.json")).devices == 3
    assert load_scenario(str(tmp_path / "s.yaml")).name == "y"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match=r"bad\.json is not valid JSON"):
        load_scenario(str(tmp_path / "bad.json"))
    with pytest.raises(UsageError, match="cannot read"):
        load_scenario(str(tmp_path / "missing.yaml"))
    (tmp_path / "typo.json").write_text(json.dumps({**SHORT, "devcies": 3}))
    with pytest.raises(ValidationError, match=r"unknown key\(s\) \['devcies'\]"):
        load_scenario(str(tmp_path / "typo.json"))


def test_the_cli_refuses_an_unknown_scenario_with_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["demo", "--scenario", "drfit", "--out", str(tmp_path)]) == 2
    assert "'drfit' is not a built-in scenario" in capsys.readouterr().err


def test_initial_rows_past_the_data_is_bad_input_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({**SHORT, "initial_rows": 5000}))  # digits has 1,797 rows
    assert main(["demo", "--scenario", str(tmp_path / "s.json"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "scenario.initial_rows: 5000 leaves no rows to stream" in err
    assert "1797 rows in all" in err


TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": "builtin:digits",
    "initial_rows": 900,
    "devices": 2,
    "duration_s": 600.0,
    "requests_per_s": 0.2,
    "step_s": 60.0,
}


def test_a_partition_of_a_ring_the_policy_lacks_is_refused_before_anything_runs(tmp_path: Path) -> None:
    outage = {"kind": "partition", "scope": "ring", "ring": "canry", "from_s": 0.0, "to_s": 60.0}
    with pytest.raises(ValidationError, match=r"\['canry'\]; the rings are \['canary', 'broad'\]"):
        run_scenario(Scenario.from_dict({**TINY, "outages": [outage]}), tmp_path, lambda message: None)
    assert not (tmp_path / "summary.json").exists()


def test_json_prints_the_summary_alone_and_quiet_prints_no_progress(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    (tmp_path / "slow-forward.json").write_text(json.dumps({**TINY, "forward_interval_s": 300.0}))  # it must drain
    assert (
        main(["demo", "--scenario", str(tmp_path / "slow-forward.json"), "--out", str(tmp_path / "a"), "--json"]) == 0
    )
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["reliability"]["records_lost"] == 0
    timeline = summary["timeline"]  # each point is a step: from t_s to t_s + step_s
    assert timeline["points"][-1]["t_s"] + timeline["step_s"] == TINY["duration_s"], "it ends with the scenario"
    assert summary == json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["run"]["steps"] > TINY["duration_s"] / TINY["step_s"], "records were still buffered at the end"
    assert "devices online" not in err
    assert main(["demo", "--scenario", str(tmp_path / "tiny.json"), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert '"reliability"' in out
    assert "summary written to" in out
    assert err == ""
    assert main(["demo", "--scenario", str(tmp_path / "tiny.json"), "--out", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    assert "scenario tiny: 2 devices" in err
    first = ["starting the local stack", "loading builtin:digits", "provisioning 2 simulated devices", "training the"]
    assert [err.find(line) for line in first] == sorted(err.find(line) for line in first), "progress from the start"
    assert -1 not in [err.find(line) for line in first]


def _flip_stream(path: Path, rows: int, flip_at: int) -> None:
    """Two inputs, label x0 + x1 > 0, flipped from row flip_at on: concept drift with the inputs fixed."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, (rows, 2))
    y = (x.sum(axis=1) > 0).astype(int)
    y[flip_at:] = 1 - y[flip_at:]
    lines = ["t,x0,x1,label"] + [f"{i},{a:.4f},{b:.4f},{c}" for i, ((a, b), c) in enumerate(zip(x, y, strict=True))]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_the_loop_decides_the_same_without_drift_at_rows_which_only_scoring_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _flip_stream(tmp_path / "flip.csv", 3000, 1500)
    scenario = {"name": "flip", "dataset": str(tmp_path / "flip.csv"), "exclude_columns": ["t"], "initial_rows": 500,
                "devices": 2, "requests_per_s": 2.0, "label_delay_s": 30.0, "family": "trees",
                "samplers": {"random": 0.05}}  # fmt: skip
    summaries: list[dict[str, Any]] = []
    monkeypatch.setattr(scoring, "check_loop", lambda scenario, summary: summaries.append(summary))
    run_scenario(Scenario.from_dict({**scenario, "drift_at_rows": [1500]}), tmp_path / "a", lambda message: None)
    run_scenario(Scenario.from_dict(scenario), tmp_path / "b", lambda message: None)
    scored, blind = summaries
    assert scored["loop"]["detections"], "the flip was detected"
    for key in ("detections", "retrains", "refused", "new_version", "samples_uploaded", "labelled", "answered"):
        assert scored["loop"][key] == blind["loop"][key], key
    assert [(r["version"], r["outcome"]) for r in scored["rollouts"]] == [
        (r["version"], r["outcome"]) for r in blind["rollouts"]
    ]
    assert _decisions(scored) == _decisions(blind)
    assert scored["loop"]["changes"][0]["at_row"] == 1500
    assert blind["loop"]["changes"] == [], "without drift_at_rows nothing is scored per change"
    assert blind["loop"]["false_alarms"] is None


def _decisions(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline's events with the wall-clock latency figures blanked: the p99 a gate measured is host timing,
    not a decision (the gate's verdict stays in the text)."""
    return [
        {**e, "text": re.sub(r"(p99_latency_\w+) [0-9.]+", r"\1 <wall-clock>", e["text"])}
        for e in summary["timeline"]["events"]
    ]


def test_a_run_that_fails_its_own_check_still_leaves_its_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(scenario: Scenario, summary: dict[str, Any]) -> None:
        raise EdgeloopError(f"scenario {scenario.name}: the check refused it")

    monkeypatch.setattr(scoring, "check_loop", failing)
    with pytest.raises(EdgeloopError, match="the check refused it"):
        run_scenario(Scenario.from_dict(TINY), tmp_path, lambda message: None)
    assert json.loads((tmp_path / "summary.json").read_text())["loop"]["answered"] > 0
    assert (tmp_path / "report.html").exists()
