"""The main job end to end: `edgeloop demo` on the embedded local stack."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgeloop.cli.main import main
from edgeloop.core.errors import EdgeloopError, UsageError
from edgeloop.local.demo import DemoOptions, _check_promises


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
def bad_model_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, str]:
    out = tmp_path_factory.mktemp("bad-model")
    capture = io.StringIO()
    with contextlib.redirect_stderr(capture):
        code = main(["demo", "--devices", "3", "--inject-bad-model", "--out", str(out)])
    return code, json.loads((out / "summary.json").read_text()), capture.getvalue()


def test_a_bad_candidate_is_reverted_in_the_canary_and_a_good_one_completes(bad_model_run: tuple) -> None:
    code, summary, _ = bad_model_run
    assert code == 0
    first, bad, good = summary["rollouts"]
    assert summary["run"]["injected_bad_versions"] == [bad["version"]]
    assert (first["outcome"], bad["outcome"], good["outcome"]) == ("completed", "reverted", "completed")
    assert bad["rings_reached"] == ["canary"]
    assert bad["devices_on_version"] == 0
    assert bad["reverted_devices"] == ["edgeloop-device-001"]
    [revert] = [d for d in bad["decisions"] if d["decision"] == "revert" and "failed" in d["reason"]]
    assert "confidence_drop" in revert["reason"]
    assert good["rings_reached"] == ["canary", "broad"]
    assert summary["model"]["version"] == good["version"]
    for device in summary["devices"]:
        assert device["model_version"] == good["version"]
    canary = summary["devices"][0]
    assert bad["version"] in canary["versions_answered"], "the canary did serve the bad version for a while"
    assert all(bad["version"] not in d["versions_answered"] for d in summary["devices"][1:])


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (lambda s: s["rollouts"][1].update(reverted_devices=[]), "['edgeloop-device-001'] got it but [] were reverted"),
        (lambda s: s["rollouts"][1].update(rings_reached=["canary", "broad"]), "was not halted in the canary"),
        (lambda s: s["devices"][2].update(model_version=2), "devices are still on bad v2"),
        (lambda s: s["rollouts"][2].update(outcome="reverted"), "v3 did not complete its rollout"),
    ],
    ids=["canary-not-reverted", "past-the-canary", "device-on-bad", "good-not-completed"],
)
def test_a_broken_rollout_promise_fails_the_demo(bad_model_run: tuple, breakage: Any, problem: str) -> None:
    summary = copy.deepcopy(bad_model_run[1])
    _check_promises(summary, 3)
    breakage(summary)
    with pytest.raises(EdgeloopError, match=re.escape(problem)):
        _check_promises(summary, 3)


def test_the_bad_candidate_ends_rejected_in_the_registry_with_the_reason(bad_model_run: tuple) -> None:
    _, summary, progress = bad_model_run
    first, bad, good = summary["rollouts"]
    assert bad["registry"]["approval"] == "Rejected"
    assert bad["registry"]["description"].startswith("reverted by rollout: ring canary failed: confidence_drop")
    assert first["registry"]["approval"] == good["registry"]["approval"] == "Approved"
    assert f"rollout v{bad['version']} [canary] revert: ring canary failed: confidence_drop" in progress
    assert f"rollout of v{bad['version']} reverted" in progress


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
