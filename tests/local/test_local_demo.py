"""The main job end to end: `edgeloop demo` on the embedded local stack."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edgeloop.cli.demo import bad_kinds
from edgeloop.cli.main import main
from edgeloop.core.errors import EdgeloopError, UsageError
from edgeloop.core.rollout import Rollout, RolloutState
from edgeloop.local.demo import DEMO_P99_RATIO, ROWS_PER_TICK, UNFINISHED, Traffic, _check_promises, _outcome
from edgeloop.local.demo_options import BAD_KINDS, DemoOptions
from edgeloop.local.sim.scenario import BadKind


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path]:
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--devices", "3", "--out", str(out)])
    return code, json.loads((out / "summary.json").read_text()), out


def test_demo_closes_the_loop(demo_run: tuple[int, dict, Path]) -> None:
    code, summary, _ = demo_run
    assert code == 0
    model = summary["model"]
    assert model["holdout_accuracy"] >= 0.95
    assert model["signed"] is True
    assert len(summary["devices"]) == 3
    for device in summary["devices"]:
        assert device["inferences"] > 0
        assert device["model_version"] == model["version"]
        assert device["health"]["model_version"] == model["version"]
        assert device["health"]["model_state"] == "active"
        assert device["health"]["model_signed"] is True, "each device verified the KMS signature"
        assert device["stream_accuracy"] >= 0.85
        assert device["health"]["rejected_inputs"] == 0, "no rows are sent to a device before it has a model"
    assert sum(d["results_delivered"] for d in summary["devices"]) == sum(d["inferences"] for d in summary["devices"])
    records = summary["records"]  # one RESULT record per micro-batch: fewer records than results
    assert 0 < records["produced"] <= sum(d["inferences"] for d in summary["devices"])
    assert records["delivered"] == records["produced"]
    assert records["lost"] == 0


def test_the_default_demo_rolls_one_version_through_every_ring(demo_run: tuple[int, dict, Path]) -> None:
    _, summary, _ = demo_run
    [rollout] = summary["rollouts"]
    assert (rollout["version"], rollout["outcome"]) == (summary["model"]["version"], "completed")
    assert rollout["rings_reached"] == ["canary", "broad"]
    assert (rollout["devices_on_version"], rollout["reverted_devices"]) == (3, [])
    decisions = [(d["ring"], d["decision"]) for d in rollout["decisions"] if d["decision"] != "wait"]
    assert decisions == [(0, "start"), (0, "promote"), (1, "promote"), (1, "promote")]
    assert [d["ring"] for d in summary["devices"]] == ["canary", "broad", "broad"]
    assert summary["run"]["health_documents_counted"] > 0
    assert summary["run"]["health_documents_refused"] == 0


@pytest.fixture(scope="module")
def bad_model_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, str, str]:
    """One demo run with every kind of bad candidate (--inject-bad-model names none: all four)."""
    out = tmp_path_factory.mktemp("bad-model")
    progress, printed = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(progress), contextlib.redirect_stdout(printed):
        code = main(["demo", "--devices", "3", "--inject-bad-model", "--out", str(out)])
    assert (out / "summary.json").exists(), f"the demo failed ({code}): {progress.getvalue()[-4000:]}"
    return code, json.loads((out / "summary.json").read_text()), progress.getvalue(), printed.getvalue()


def _bad(summary: dict, kind: str) -> dict:
    [rollout] = [r for r in summary["rollouts"] if r["bad_kind"] == kind]
    return rollout


def test_every_bad_candidate_is_reverted_in_the_canary_and_a_good_one_completes(bad_model_run: tuple) -> None:
    code, summary, _, _ = bad_model_run
    assert code == 0
    first, *bad, good = summary["rollouts"]
    assert [r["bad_kind"] for r in bad] == list(BAD_KINDS)
    assert summary["run"]["injected_bad_versions"] == [r["version"] for r in bad]
    assert (first["outcome"], good["outcome"]) == ("completed", "completed")
    for rollout in bad:
        assert rollout["outcome"] == "reverted"
        assert rollout["rings_reached"] == ["canary"]
        assert rollout["devices_on_version"] == 0
        assert rollout["reverted_devices"] == ["edgeloop-device-001"]
        assert (rollout["last_known_good"], rollout["devices_off_last_known_good"]) == (first["version"], [])
    assert good["rings_reached"] == ["canary", "broad"]
    assert summary["model"]["version"] == good["version"]
    for device in summary["devices"]:
        assert device["model_version"] == good["version"]
        assert device["health"]["model_state"] == "active"


@pytest.mark.parametrize(("kind", "gate"), [("inaccurate", "confidence_drop"), ("slow", "p99_latency_ratio")])
def test_a_candidate_that_runs_badly_is_stopped_by_the_named_canary_gate(
    bad_model_run: tuple, kind: str, gate: str
) -> None:
    _, summary, progress, _ = bad_model_run
    rollout = _bad(summary, kind)
    assert rollout["stopped_by"].startswith(f"canary gate: {gate} ")
    assert rollout["device_failures"] == []
    [revert] = [d for d in rollout["decisions"] if d["decision"] == "revert" and "failed" in d["reason"]]
    assert revert["reason"].startswith(f"ring canary failed: {gate}")
    canary, *broad = summary["devices"]
    assert rollout["version"] in canary["versions_answered"], "the canary did serve it for a while"
    assert all(rollout["version"] not in d["versions_answered"] for d in broad)
    assert f"rollout v{rollout['version']} [canary] revert: ring canary failed: {gate}" in progress


def test_the_slow_candidate_was_honest_but_far_beyond_the_latency_gate(bad_model_run: tuple) -> None:
    _, summary, _, _ = bad_model_run
    slow, accurate = _bad(summary, "slow"), summary["rollouts"][-1]
    [revert] = [d for d in slow["decisions"] if d["decision"] == "revert" and "failed" in d["reason"]]
    ratio = float(revert["reason"].split("p99_latency_ratio ")[1].split(" ")[0])
    assert ratio >= 2 * DEMO_P99_RATIO
    assert "confidence_drop" not in revert["reason"], "its answers are the honest model's"
    [passed] = [d for d in accurate["decisions"] if d["reason"].startswith("ring canary passed")]
    assert "p99_latency_ratio" in passed["reason"], "the same gate judged the honest candidate, and let it through"


@pytest.mark.parametrize(("kind", "failure"), [("tampered", "sha256 mismatch"), ("selftest", "self-test failed")])
def test_a_candidate_that_fails_device_verification_never_runs_anywhere(
    bad_model_run: tuple, kind: str, failure: str
) -> None:
    _, summary, progress, _ = bad_model_run
    rollout = _bad(summary, kind)
    assert rollout["stopped_by"] == f"device verification: {failure}"
    # the failed deployments fail the job gate; the device's activation failure may reach the gate first or not
    assert rollout["reverted_by"].startswith("canary gate: ")
    assert "job_failure_rate 1 > 0.1" in rollout["reverted_by"].split("; devices report")[0]
    [failed] = rollout["device_failures"]
    assert failed["thing_name"] == "edgeloop-device-001"
    assert "serving com.edgeloop.model.digits 1.0.0 from the local store" in failed["detail"]
    assert all(rollout["version"] not in d["versions_answered"] for d in summary["devices"])
    assert f"stopped by device verification: {failure}" in progress


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (lambda s: s["rollouts"][1].update(reverted_devices=[]), "['edgeloop-device-001'] got it but [] were reverted"),
        (lambda s: s["rollouts"][1].update(rings_reached=["canary", "broad"]), "was not halted in the canary"),
        (lambda s: s["devices"][2].update(model_version=2), "devices are still on bad v2"),
        (lambda s: s["rollouts"][-1].update(outcome="reverted"), "v6 did not complete its rollout"),
        (
            lambda s: s["rollouts"][2].update(stopped_by="canary gate: confidence_drop 0.5 > 0.05"),
            "slow v3 was stopped by canary gate: confidence_drop 0.5 > 0.05, not by canary gate: p99_latency_ratio",
        ),
        (
            lambda s: s["rollouts"][3].update(stopped_by="canary gate: error_rate 1 > 0.02"),
            "tampered v4 was stopped by canary gate: error_rate 1 > 0.02, not by device verification: sha256",
        ),
        (lambda s: s["devices"][0]["versions_answered"].append(5), "selftest v5 should never have run, but ['edge"),
        (
            lambda s: s["rollouts"][4].update(reverted_by="canary gate: error_rate 1 > 0.02"),
            "selftest v5 was reverted by canary gate: error_rate 1 > 0.02, not by a job or activation failure gate",
        ),
        (
            lambda s: s["rollouts"][3].update(devices_off_last_known_good=["edgeloop-device-001"]),
            "after bad v4, ['edgeloop-device-001'] were not back on last-known-good v1",
        ),
    ],
    ids=[
        "canary-not-reverted",
        "past-the-canary",
        "device-on-bad",
        "good-not-completed",
        "slow-by-wrong-gate",
        "tampered-not-by-device",
        "selftest-ran",
        "selftest-reverted-by-metric",
        "canary-not-back-on-good",
    ],
)
def test_a_broken_rollout_promise_fails_the_demo(bad_model_run: tuple, breakage: Any, problem: str) -> None:
    summary = copy.deepcopy(bad_model_run[1])
    _check_promises(summary, 3)
    breakage(summary)
    with pytest.raises(EdgeloopError, match=re.escape(problem)):
        _check_promises(summary, 3)


def test_each_bad_candidate_ends_rejected_in_the_registry_with_the_reason(bad_model_run: tuple) -> None:
    _, summary, _, _ = bad_model_run
    first, *bad, good = summary["rollouts"]
    gates = {"inaccurate": "confidence_drop", "slow": "p99_latency_ratio"}  # the others: their deployments failed
    for rollout in bad:
        assert rollout["registry"]["approval"] == "Rejected"
        gate = gates.get(rollout["bad_kind"], "job_failure_rate")
        description = rollout["registry"]["description"]
        assert description.startswith("reverted by rollout: ring canary failed: ")
        assert f"{gate} " in description.split("; devices report")[0]  # activation_failure_rate may come first
    devices_say = {"tampered": "sha256 is", "selftest": "self-test failed"}  # what the device said, not a gate
    for rollout in bad:
        if rollout["bad_kind"] in devices_say:
            assert devices_say[rollout["bad_kind"]] in rollout["registry"]["description"].split("; devices report: ")[1]
    assert first["registry"]["approval"] == good["registry"]["approval"] == "Approved"


def test_the_printed_summary_names_each_kind_and_where_it_was_stopped(bad_model_run: tuple) -> None:
    _, summary, _, printed = bad_model_run
    for rollout in summary["rollouts"]:
        [line] = [row for row in printed.splitlines() if row.startswith(f"v{rollout['version']} ")]
        assert (rollout["bad_kind"] or "honest") in line
        assert line.rstrip().endswith(rollout["stopped_by"] or "-")


def test_demo_leaves_only_the_summary_and_its_report(demo_run: tuple[int, dict, Path]) -> None:
    _, _, out = demo_run
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.json"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--devices", "0"], "--devices: must be between 1 and 100, got 0"),
        (["demo", "--devices", "many"], "'many' is not a whole number"),
        (["demo", "--colour"], "unrecognized arguments: --colour"),
        (["launch"], "invalid choice: 'launch'"),
        (
            ["demo", "--inject-bad-model", "fast"],
            "invalid choice: 'fast' (choose from 'inaccurate', 'slow', 'tampered', 'selftest')",
        ),
    ],
)
def test_bad_options_exit_2_with_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_out_that_is_a_file_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "taken"
    target.write_text("not a directory")
    assert main(["demo", "--out", str(target)]) == 2
    assert "--out:" in capsys.readouterr().err
    assert target.read_text() == "not a directory"


def test_out_under_a_file_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "is not a directory, so" in err
    assert len(err.strip().splitlines()) == 1


def test_demo_options_validate_their_own_fields(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--devices"):
        DemoOptions(devices=101, out=tmp_path)


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (lambda s: s["devices"][0].update(versions_answered=[1, 2]), "answered with model version(s) [2] never rolled"),
        (lambda s: s["devices"][1]["health"].update(model_version=7), "reports model v7"),
        (lambda s: s["rollouts"][0].update(outcome="reverted"), "v1 did not complete its rollout (reverted)"),
        (lambda s: s["run"].update(injected_bad_versions=[1]), "bad v1 was not halted in the canary"),
        (lambda s: s["devices"][0].update(inferences=0), "made no inferences"),
        (lambda s: s["records"].update(lost=3), "3 records lost"),
        (lambda s: s["devices"].pop(), "2 devices reported, expected 3"),
    ],
    ids=[
        "stray-version",
        "shadow-version",
        "incomplete",
        "bad-not-halted",
        "idle-device",
        "lost-records",
        "missing-device",
    ],
)
def test_a_broken_promise_fails_the_demo(demo_run: tuple[int, dict, Path], breakage: Any, problem: str) -> None:
    summary = copy.deepcopy(demo_run[1])
    _check_promises(summary, 3)
    breakage(summary)
    with pytest.raises(EdgeloopError, match=re.escape(problem)):
        _check_promises(summary, 3)


@pytest.mark.parametrize(
    ("value", "kinds"),
    [(None, ()), ([], BAD_KINDS), (["selftest", "slow"], (BadKind.SELFTEST, BadKind.SLOW))],
    ids=["absent", "bare-flag-means-all", "named"],
)
def test_inject_bad_model_names_the_kinds(value: list[str] | None, kinds: tuple[BadKind, ...]) -> None:
    assert bad_kinds(argparse.Namespace(inject_bad_model=value)) == kinds


class _Sensorless:
    """A simulated device as Traffic sees it: its model version, and the requests it was sent."""

    def __init__(self, model_version: int | None) -> None:
        self.model_version, self.sent = model_version, []  # type: ignore[var-annotated]

    def health(self) -> SimpleNamespace:
        return SimpleNamespace(model_version=self.model_version)

    def submit(self, request_id: str, features: list[float]) -> None:
        self.sent.append(request_id)


def test_traffic_reaches_a_device_only_once_it_has_a_model() -> None:
    devices = {"canary": _Sensorless(1), "broad": _Sensorless(None)}
    trained = SimpleNamespace(x_holdout=np.zeros((4, 2)), y_holdout=np.array([0, 1, 0, 1]))
    traffic = Traffic(SimpleNamespace(devices=devices), ["canary", "broad"], trained)  # type: ignore[arg-type]
    traffic.tick()
    assert (len(devices["canary"].sent), devices["broad"].sent) == (ROWS_PER_TICK, [])
    devices["broad"].model_version = 1  # its ring's deployment arrived
    traffic.tick()
    assert len(devices["broad"].sent) == ROWS_PER_TICK
    assert set(traffic.truth) == {*devices["canary"].sent, *devices["broad"].sent}


@pytest.mark.parametrize(
    ("state", "outcome"),
    [(RolloutState.COMPLETED, "completed"), (RolloutState.ROLLED_BACK, "reverted"), (RolloutState.IN_RING, UNFINISHED),
     (RolloutState.HALTED, UNFINISHED)],
)  # fmt: skip
def test_a_rollout_the_stream_ended_under_is_unfinished_not_reverted(state: RolloutState, outcome: str) -> None:
    assert _outcome(Rollout("digits", 4, state, 0, 2)) == outcome
