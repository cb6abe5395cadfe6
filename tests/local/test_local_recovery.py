"""The loop's recovery bookkeeping: one detection per change, the concept's start, when retrains are due."""

from __future__ import annotations

import numpy as np

from edgeloop.core.manifest import Reliability
from edgeloop.core.retraining import RecoveryPolicy, RetrainingPolicy
from edgeloop.local.detection import ChangeWatch
from edgeloop.local.recovery import Moment, Recovery, old_rows
from edgeloop.local.retrain import Labelled

POLICY = RetrainingPolicy(drift_bound=0.2, drift_for_s=300.0, min_labels_on_drift=10, min_new_labels=100)


def _samples(start: int, count: int, wrong: bool, version: int = 1) -> list[Labelled]:
    return [Labelled(np.zeros(2), 0, version, 1 if wrong else 0, start + i, True) for i in range(count)]


def test_the_watch_alarms_on_the_live_versions_errors_only_and_once_per_change() -> None:
    watch = ChangeWatch()
    watch.restart(1, reference=(5, 200))
    assert not watch.labelled([(i, 1, False, True, None) for i in range(100)])
    assert not watch.labelled([(100 + i, 2, True, True, None) for i in range(100)]), "another version's errors"
    assert watch.labelled([(200 + i, 1, True, True, None) for i in range(40)])
    watch.open = True
    assert not watch.labelled([(300 + i, 1, True, True, None) for i in range(40)]), "the change is already open"
    watch.restart(3)
    assert not watch.open
    assert watch.errors == []


def test_a_labelled_alarm_opens_a_change_where_the_errors_stepped_up() -> None:
    recovery = Recovery(POLICY, RecoveryPolicy(min_labels=20, gate_min_samples=10))
    recovery.went_live(1, reference=(5, 200))
    assert recovery.observe(_samples(0, 120, wrong=False), None, Moment(100.0, 119, 1119)) is None
    detection = None
    for step in range(10):
        detection = detection or recovery.observe(_samples(120 + 10 * step, 10, True), None, Moment(200.0, 1, 1))
    assert detection is not None
    assert detection.source == "labelled_errors"
    assert 110 <= recovery.concept_start <= 130
    recovery.observe(_samples(300, 20, True), None, Moment(300.0, 320, 1320))
    assert recovery.due().retrain
    recovery.tried()
    assert not recovery.due().retrain, "next at twice the labels"
    x, y = old_rows(np.ones((3, 2)), np.zeros(3, dtype=np.int64), recovery.old())
    assert len(x) == len(y) == 3 + len(recovery.old())


def test_fleet_drift_alarms_only_when_it_stays_above_the_versions_own_floor() -> None:
    recovery = Recovery(POLICY, sustain_s=120.0)
    recovery.went_live(1)
    assert recovery.sustain_s == 120.0, "a drift window of fresh rows is shorter than drift_for_s"
    for t in range(0, 600, 30):
        assert recovery.observe([], 0.05, Moment(float(t), t, t)) is None
    assert recovery.observe([], 0.5, Moment(600.0, 600, 600)) is None, "not sustained yet"
    detection = recovery.observe([], 0.5, Moment(720.0, 720, 720))
    assert detection is not None
    assert detection.source == "fleet_drift"
    assert recovery.concept_start == 600
    recovery.went_live(2)  # a version trained across the change starts high: only a rise above that counts
    for t in range(800, 2000, 30):
        assert recovery.observe([], 9.0 + (t % 60) / 100, Moment(float(t), t, t)) is None
    assert len(recovery.detections) == 1


def test_with_its_reliability_table_the_watch_hears_confident_hard_examples_go_wrong() -> None:
    table = Reliability(edges=(0.6, 0.9), rows=(300, 300, 300), errors=(90, 9, 3))
    wrong_and_sure = [(i, 1, True, False, 0.95) for i in range(25)]  # hard examples: the random CUSUM skips them
    blind = ChangeWatch()
    blind.restart(1, reference=(5, 200))
    assert not blind.labelled(wrong_and_sure)
    calibrated = ChangeWatch()
    calibrated.restart(1, reference=(5, 200), reliability=table)
    assert calibrated.labelled(wrong_and_sure)
    right_and_sure = [(i, 1, False, False, 0.95) for i in range(300)]
    quiet = ChangeWatch()
    quiet.restart(1, reference=(5, 200), reliability=table)
    assert not quiet.labelled(right_and_sure), "answers as good as the holdout's raise nothing"


def test_a_fresh_version_is_gated_on_labels_it_never_trained_on_not_only_on_its_own_samples() -> None:
    recovery = Recovery(POLICY, RecoveryPolicy(min_labels=20, gate_min_samples=10, growth=1.5))
    recovery.went_live(1, reference=(5, 200))
    recovery.observe(_samples(0, 100, wrong=False), None, Moment(100.0, 99, 1099))
    for step in range(10):
        recovery.observe(_samples(100 + 10 * step, 10, True), None, Moment(200.0, 1, 1))
    assert recovery.due().retrain
    recovery.tried()
    recovery.trained(2)
    before = {id(s) for s in recovery.labelled}
    recovery.went_live(2)
    assert not recovery.unseen_by_live() & before, "v2 trained on every label that had arrived"
    recovery.observe(_samples(200, 60, True, version=1), None, Moment(300.0, 260, 1260))  # v1's, labelled late
    assert len(recovery.unseen_by_live()) == 60
    assert recovery.due().retrain, "v2 never saw them: the cloud can answer them with v2 itself"
    recovery.went_live(1)
    assert len(recovery.unseen_by_live()) == len(recovery.labelled), "the first version trained on no label"


def test_only_a_version_retrained_on_the_open_concept_is_a_successor() -> None:
    recovery = Recovery(POLICY)
    recovery.went_live(1)
    recovery.concept_start = 100
    assert not recovery.live_is_successor, "the first version knew no concept after a change"
    recovery.tried()
    recovery.trained(2)
    recovery.went_live(2)
    assert recovery.live_is_successor
    recovery.concept_start = 900  # a new detection opened another concept
    assert not recovery.live_is_successor
