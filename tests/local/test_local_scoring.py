"""Honest scoring: change points as stream positions, one detection per change, recovery against the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeloop.core.errors import EdgeloopError
from edgeloop.local.detection import Detection
from edgeloop.local.ledger import Ledger
from edgeloop.local.scoring import Change, Retrain, Scoring, change_points, check_loop, score
from edgeloop.local.sim.scenario import Scenario
from edgeloop.training.config import TrainingConfig

BUILTIN: dict[str, Any] = {
    "name": "s", "dataset": "builtin:digits", "initial_rows": 100, "devices": 1, "duration_s": 100.0,
    "drift": [{"kind": "concept", "at_s": 50.0, "magnitude": 1}],
}  # fmt: skip


def _ledger(n: int, rng: np.random.Generator) -> tuple[Ledger, np.ndarray]:
    """n requests one second apart; features decide the label (x0 > 0), flipped from request 100 on."""
    ledger = Ledger()
    x = rng.normal(0.0, 1.0, (n, 2))
    truth = (x[:, 0] > 0).astype(np.int64)
    truth[100:] = 1 - truth[100:]
    for i in range(n):
        ledger.add(float(i), 0, truth[i : i + 1], np.array([i]))
    return ledger, x


def _scoring(ledger: Ledger, x: np.ndarray, tmp_path: Path, **kw: Any) -> Scoring:
    base: dict[str, Any] = {
        "ledger": ledger, "changes": [Change(100, 200)], "detections": [], "retrains": [], "bad_versions": set(),
        "initial_family": "trees", "rows_for": lambda idx: (x[idx], idx), "known": True,
        "config": TrainingConfig(model_dir=tmp_path / "o", model_name="digits", n_estimators=20),
    }  # fmt: skip
    return Scoring(**{**base, **kw})


def test_a_drift_event_maps_to_the_first_request_made_at_or_after_it() -> None:
    ledger, _ = _ledger(150, np.random.default_rng(0))
    rows = np.arange(150) + 100
    assert change_points(Scenario.from_dict(BUILTIN), ledger, rows) == [Change(50, 150)]
    with_rows = Scenario.from_dict({**BUILTIN, "drift": []})
    assert change_points(with_rows, ledger, rows) == []


def test_detections_before_the_change_and_twice_per_change_are_false_alarms(tmp_path: Path) -> None:
    ledger, x = _ledger(300, np.random.default_rng(1))
    detections = [Detection(t, i, i + 100, "labelled_errors", "") for t, i in ((40.0, 40), (130.0, 130), (170.0, 170))]
    loop = score(_scoring(ledger, x, tmp_path, detections=detections))
    assert loop["false_alarms"] == 2
    assert (loop["drift_detected_at_row"], loop["detection_delay_rows"]) == (230, 30)
    assert loop["changes"][0]["false_alarms"] == 1
    assert score(_scoring(ledger, x, tmp_path, detections=detections, known=False))["false_alarms"] is None


def test_recovery_counts_only_versions_retrained_after_the_change_and_the_oracle_scores_the_same_rows(
    tmp_path: Path,
) -> None:
    ledger, x = _ledger(600, np.random.default_rng(2))
    truth = ledger.truth[:600].astype(np.int64)
    for i in range(600):  # v1 answers the old concept until 300, v2 (retrained at 250) the new one after
        old_answer = int(x[i, 0] > 0)
        ledger.answer(i, old_answer if i < 300 else int(truth[i]), 1 if i < 300 else 2)
    retrains = [Retrain(2, 250.0, 250, "trees")]
    loop = score(_scoring(ledger, x, tmp_path, retrains=retrains, detections=[Detection(150.0, 150, 250, "x", "")]))
    change = loop["changes"][0]
    assert change["retrains"] == [2]
    assert change["recovered_rows"] == 300
    assert loop["recovered_accuracy"] == 1.0
    assert loop["post_drift_accuracy"] == 0.0, "v1 after the flip: always wrong"
    assert loop["pre_drift_accuracy"] == 1.0
    assert 0.9 <= loop["oracle_accuracy"] <= 1.0


def _summary(**loop: Any) -> dict[str, Any]:
    change = {"at_row": 200, "detected_at_row": 250, "recovered_accuracy": 0.9, "post_drift_accuracy": 0.5,
              "oracle_accuracy": 0.91}  # fmt: skip
    base = {"false_alarms": 0, "detections": [{"row": 250}], "changes": [change]}
    reliability = {"records_lost": 0, "duplicates_ingested": 0}
    return {"loop": {**base, **loop}, "reliability": reliability, "rollouts": []}


@pytest.mark.parametrize(
    ("change", "loop", "problem"),
    [
        ({"detected_at_row": None}, {}, "the change at row 200 was never detected"),
        ({}, {"false_alarms": 1}, r"1 false alarm\(s\)"),
        ({"oracle_accuracy": 0.93}, {}, "more than 2 points below the oracle 0.93"),
        ({"recovered_accuracy": None}, {}, "no retrained version answered"),
        ({"recovered_accuracy": 0.5, "oracle_accuracy": None}, {}, "recovered accuracy 0.5 is not above 0.5"),
        ({"recovered_by": "deployed", "recovered_accuracy": 0.8}, {}, "the deployed one kept serving"),
        ({"recovered_by": "deployed", "oracle_accuracy": None}, {}, "no oracle to judge the deployed one"),
    ],
    ids=["missed", "false-alarm", "below-oracle", "not-recovered", "no-better", "deployed-short", "deployed-unjudged"],
)
def test_the_run_check_fails_a_run_its_own_figures_call_bad(
    change: dict[str, Any], loop: dict[str, Any], problem: str
) -> None:
    summary = _summary(**loop)
    summary["loop"]["changes"][0].update(change)
    with pytest.raises(EdgeloopError, match=problem):
        check_loop(Scenario.from_dict(BUILTIN), summary)


def test_the_run_check_passes_a_recovery_within_two_points_of_the_oracle() -> None:
    check_loop(Scenario.from_dict(BUILTIN), _summary())


def test_a_change_the_deployed_version_still_answers_well_needs_no_retrain() -> None:
    summary = _summary()
    summary["loop"]["changes"][0].update(recovered_by="deployed", recovered_accuracy=0.95, post_drift_accuracy=0.96)
    check_loop(Scenario.from_dict(BUILTIN), summary)  # within 2 points of the oracle, though not above `post`


def test_without_a_retrain_the_deployed_versions_answers_after_the_detection_are_scored(tmp_path: Path) -> None:
    ledger, x = _ledger(400, np.random.default_rng(3))
    truth = ledger.truth[:400].astype(np.int64)
    for i in range(400):  # one version throughout, right on every request (the change did not hurt it)
        ledger.answer(i, int(truth[i]), 1)
    detections = [Detection(150.0, 150, 250, "fleet_drift", "")]
    change = score(_scoring(ledger, x, tmp_path, detections=detections))["changes"][0]
    assert change["recovered_by"] == "deployed"
    assert change["recovered_rows"] == 250, "requests 150-399: from the detection on"
    assert change["recovered_accuracy"] == 1.0
    assert change["post_drift_accuracy"] == 1.0, "requests 100-149: the change, before the loop knew"
    assert change["oracle_accuracy"] is not None
    undetected = score(_scoring(ledger, x, tmp_path))["changes"][0]
    assert undetected["recovered_accuracy"] is None


@pytest.mark.parametrize(
    ("rollout", "problem"),
    [
        ({"version": 3, "bad_kind": None, "outcome": "reverted"}, "v3 did not complete its rollout"),
        ({"version": 4, "bad_kind": "slow", "outcome": "unfinished"}, "bad candidate v4"),
        ({"version": 5, "bad_kind": None, "outcome": "unfinished"}, None),
    ],
    ids=["good-reverted", "bad-unfinished", "good-unfinished"],
)
def test_only_a_good_version_still_in_its_rings_when_the_file_ran_out_is_not_held_against_the_run(
    rollout: dict[str, Any], problem: str | None
) -> None:
    summary = _summary()
    summary["rollouts"] = [rollout]
    if problem is None:
        check_loop(Scenario.from_dict(BUILTIN), summary)
        return
    with pytest.raises(EdgeloopError, match=problem):
        check_loop(Scenario.from_dict(BUILTIN), summary)


def test_retrains_of_different_families_are_each_judged_by_their_own_familys_oracle(tmp_path: Path) -> None:
    ledger, x = _ledger(600, np.random.default_rng(4))
    truth = ledger.truth[:600].astype(np.int64)
    for i in range(600):  # v2 (trees) answers 300-449, v3 (linear) 450-599, both right
        ledger.answer(i, int(x[i, 0] > 0) if i < 300 else int(truth[i]), 1 if i < 300 else 2 if i < 450 else 3)
    retrains = [Retrain(2, 250.0, 250, "trees"), Retrain(3, 400.0, 400, "linear")]
    change = score(_scoring(ledger, x, tmp_path, retrains=retrains, detections=[Detection(150.0, 150, 250, "x", "")]))[
        "changes"
    ][0]
    assert change["oracle_family"] == "trees+linear"
    assert change["recovered_rows"] == 300
    assert 0.9 <= change["oracle_accuracy"] <= 1.0, "a sign boundary: both families learn it from 500 rows"


@pytest.mark.parametrize(("completed", "final", "rows"), [({2, 3}, 3, 150), ({2}, 2, 150), (set(), None, 300)])
def test_recovery_is_scored_on_the_last_retrain_that_reached_the_fleet(
    tmp_path: Path, completed: set[int], final: int | None, rows: int
) -> None:
    ledger, x = _ledger(600, np.random.default_rng(5))
    truth = ledger.truth[:600].astype(np.int64)
    for i in range(600):  # v2 (few labels) right on half of its requests, v3 on all of them
        answer = int(x[i, 0] > 0) if i < 300 else int(truth[i]) if i >= 450 or i % 2 else 1 - int(truth[i])
        ledger.answer(i, answer, 1 if i < 300 else 2 if i < 450 else 3)
    retrains = [Retrain(2, 250.0, 250, "trees"), Retrain(3, 400.0, 400, "trees")]
    detections = [Detection(150.0, 150, 250, "x", "")]
    change = score(
        _scoring(ledger, x, tmp_path, retrains=retrains, detections=detections, completed=frozenset(completed))
    )["changes"][0]
    assert (change["recovered_version"], change["recovered_rows"]) == (final, rows)
    assert change["recovering_accuracy"] == 0.75, "both retrained versions' answers: the way there"
    assert change["recovered_accuracy"] == {3: 1.0, 2: 0.5, None: 0.75}[final]
    assert change["post_drift_accuracy"] == 0.0, "v1's answers after the change"
