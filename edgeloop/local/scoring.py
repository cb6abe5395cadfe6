"""Honest scoring of a scenario run: per change point, was it detected, how late, how often by mistake, and how
close the retrained versions came to an oracle that knew every true label.

Simulation bookkeeping, not platform code, and the only reader of the stream's known change points (a file
scenario's drift_at_rows; a built-in scenario's drift events, mapped from their at_s to the first request made
at or after it): nothing the loop decides reads them.

Definitions, per change k (its segment: the requests from change k up to change k + 1 or the stream's end):
- detected: the first detection whose stream position falls in the segment; delay = its file row minus the
  change's row. A detection before the first change, or a second one in a segment, is a false alarm.
- recovered_accuracy: accuracy of the segment's requests answered by the version the recovery ended on: the
  last version retrained after the change (a retrain triggered inside the segment) whose rollout reached the
  whole fleet (`recovered_version`); when none did, every retrained version's. `recovering_accuracy` pools
  every retrained version's answers (the early retrains on fewer labels included): the way there.
  post_drift_accuracy: the segment's answered requests by the versions live when it began; bad candidates are
  left out of all three. A detected change the loop did not retrain for (its new-world gate found no candidate
  better than the deployed version) is scored on what the deployed version answered after the detection
  (`recovered_by: deployed`): a change that did not hurt the model needs no retrain, and one that did shows up
  as a gap to the oracle.
- oracle_accuracy: the same family as the version that answered, trained on the segment's rows with their true
  labels, cross-fitted over ORACLE_FOLDS folds (no row is scored by a model that saw it), scored on exactly the
  requests recovered_accuracy scores: when retrains chose different families, each family's oracle scores the
  requests its versions answered (`oracle_family` names them, joined by "+").
Top-level figures pool the segments (correct answers over answers); `changes` lists each segment.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from edgeloop.core.errors import EdgeloopError
from edgeloop.local.demo import UNFINISHED
from edgeloop.local.detection import Detection
from edgeloop.local.ledger import Ledger
from edgeloop.local.sim.scenario import Scenario
from edgeloop.training.config import TrainingConfig
from edgeloop.training.model import FAMILIES

ORACLE_FOLDS = 5
ORACLE_GAP = 0.02
"""The run's own check fails a recovery more than this far (2 points) below the oracle."""

RowsFor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Ledger indices -> (features, the indices they are for): the rows the oracle may learn from."""


@dataclass(frozen=True)
class Retrain:
    """One retrained version that went live: when it was triggered (time, stream position) and its family."""

    version: int
    t_s: float
    index: int
    family: str


@dataclass(frozen=True)
class Change:
    """One known change point, as a stream position (ledger index) and the file row it is."""

    index: int
    row: int


def change_points(scenario: Scenario, ledger: Ledger, file_rows: np.ndarray) -> list[Change]:
    """The stream's known changes as stream positions: drift_at_rows (file rows), else drift events' at_s."""
    size = ledger.size
    points: Sequence[int] = getattr(scenario, "drift_at_rows", ()) or ()
    out: list[Change] = []
    if points:
        for point in sorted(set(points)):
            hits = np.flatnonzero(file_rows[:size] >= point)
            if len(hits):
                out.append(Change(int(hits[0]), int(point)))
        return out
    for at_s in sorted({e.at_s for e in scenario.drift}):
        hits = np.flatnonzero(ledger.at_s[:size] >= at_s)
        if len(hits):
            out.append(Change(int(hits[0]), int(file_rows[hits[0]])))
    return out


@dataclass(frozen=True)
class Scoring:
    """What scoring needs from the run."""

    ledger: Ledger
    changes: list[Change]
    detections: list[Detection]
    retrains: list[Retrain]
    bad_versions: set[int]
    initial_family: str
    rows_for: RowsFor
    known: bool
    """Whether the run's change points are known (a file without drift_at_rows: none are, nothing is a false alarm)."""
    config: TrainingConfig
    """The oracle's training configuration (its model_dir is scratch)."""
    completed: frozenset[int] = frozenset()
    """Versions whose rollout reached the whole fleet: the one a recovery ends on is the last of them."""


def score(s: Scoring) -> dict[str, Any]:
    """The loop's detection and recovery figures, per change and pooled."""
    size = s.ledger.size
    version = s.ledger.version[:size]
    bad = np.isin(version, list(s.bad_versions)) if s.bad_versions else np.zeros(size, dtype=bool)
    first = s.changes[0].index if s.changes else size
    pre = (np.arange(size) < first) & ~bad
    before = [d for d in s.detections if d.index < first]
    segments = [_segment(s, k, bad) for k in range(len(s.changes))]
    pooled = {key: _pool(segments, key) for key in ("post_drift", "recovered", "oracle")}
    first_segment = segments[0] if segments else None
    return {
        "pre_drift_accuracy": s.ledger.accuracy(pre),
        "post_drift_accuracy": pooled["post_drift"],
        "recovered_accuracy": pooled["recovered"],
        "oracle_accuracy": pooled["oracle"],
        "drift_detected_at_row": first_segment["detected_at_row"] if first_segment else None,
        "detection_delay_rows": first_segment["detection_delay_rows"] if first_segment else None,
        "false_alarms": len(before) + sum(seg["false_alarms"] for seg in segments) if s.known else None,
        "changes": [{k: v for k, v in seg.items() if not k.startswith("_")} for seg in segments],
        "detections": [d.to_dict() for d in s.detections],
    }


def _segment(s: Scoring, k: int, bad: np.ndarray) -> dict[str, Any]:
    """One change's detection and recovery figures."""
    size = s.ledger.size
    change = s.changes[k]
    end = s.changes[k + 1].index if k + 1 < len(s.changes) else size
    found = [d for d in s.detections if change.index <= d.index < end]
    mine = [r for r in s.retrains if change.index <= r.index < end]
    positions = np.arange(size)
    inside = (positions >= change.index) & (positions < end)
    retrained = inside & np.isin(s.ledger.version[:size], [r.version for r in mine]) & ~bad
    final = [r for r in mine if r.version in s.completed][-1:]
    if final:  # the version the recovery ended on: the last retrain that reached the whole fleet
        mine = final
        recovered = inside & (s.ledger.version[:size] == final[0].version) & ~bad
    elif mine:  # none reached the fleet: every retrained version's answers
        recovered = retrained
    elif found:  # no retrain: what the deployed version answered once the loop knew of the change
        recovered = inside & (positions >= found[0].index) & ~bad
    else:
        recovered = np.zeros(size, dtype=bool)
    post = inside & ~retrained & ~recovered & ~bad
    families: dict[int | None, str] = {r.version: r.family for r in mine} or {None: s.initial_family}
    family = "+".join(dict.fromkeys(families.values()))
    scored = (0, 0)
    for name in dict.fromkeys(families.values()):  # each family's oracle scores the rows its own versions answered
        answered_by = [v for v, f in families.items() if f == name and v is not None]
        mask = recovered & np.isin(s.ledger.version[:size], answered_by) if answered_by else recovered
        part = _oracle(s, inside, mask, name)[1]
        scored = (scored[0] + part[0], scored[1] + part[1])
    oracle = round(scored[0] / scored[1], 4) if scored[1] else None
    return {
        "at_row": change.row,
        "detected_at_row": found[0].row if found else None,
        "detected_at_s": round(found[0].t_s, 1) if found else None,
        "detection_delay_rows": found[0].row - change.row if found else None,
        "false_alarms": max(0, len(found) - 1),
        "retrains": [r.version for r in mine],
        "recovered_by": "retrained" if mine else "deployed",
        "post_drift_accuracy": s.ledger.accuracy(post),
        "recovered_accuracy": s.ledger.accuracy(recovered),
        "recovered_version": final[0].version if final else None,
        "recovering_accuracy": s.ledger.accuracy(retrained) if retrained.any() else None,
        "recovered_rows": int((recovered & _answered(s.ledger)).sum()),
        "oracle_accuracy": oracle,
        "oracle_family": family,
        "_post_drift": _counts(s.ledger, post),
        "_recovered": _counts(s.ledger, recovered),
        "_oracle": scored,
    }


def _answered(ledger: Ledger) -> np.ndarray:
    return ledger.predicted[: ledger.size] >= 0


def _counts(ledger: Ledger, mask: np.ndarray) -> tuple[int, int]:
    """(correct, answered) among the requests in mask."""
    chosen = mask & _answered(ledger)
    right = ledger.predicted[: ledger.size][chosen] == ledger.truth[: ledger.size][chosen]
    return int(right.sum()), int(chosen.sum())


def _pool(segments: list[dict[str, Any]], key: str) -> float | None:
    """Correct over answered, summed across segments."""
    right = sum(seg[f"_{key}"][0] for seg in segments)
    total = sum(seg[f"_{key}"][1] for seg in segments)
    return round(right / total, 4) if total else None


def _oracle(
    s: Scoring, inside: np.ndarray, scored_mask: np.ndarray, family: str
) -> tuple[float | None, tuple[int, int]]:
    """The family trained on the segment's true labels, cross-fitted, scored on the recovered requests."""
    if not scored_mask.any():
        return None, (0, 0)
    rows, index = s.rows_for(np.flatnonzero(inside))
    truth = s.ledger.truth[index].astype(np.int64)
    scored = scored_mask[index] & _answered(s.ledger)[index]
    if not scored.any() or len(np.unique(truth)) < 2:
        return None, (0, 0)
    config = replace(s.config, family=family)
    folds = np.array([zlib.crc32(np.round(row, 3).tobytes()) % ORACLE_FOLDS for row in rows])  # stable across runs
    correct = 0
    with threadpool_limits(1):
        correct = sum(_oracle_fold(family, rows, truth, folds == fold, scored, config) for fold in range(ORACLE_FOLDS))
    total = int(scored.sum())
    return round(correct / total, 4), (correct, total)


def _oracle_fold(
    family: str, rows: np.ndarray, truth: np.ndarray, fold: np.ndarray, scored: np.ndarray, config: TrainingConfig
) -> int:
    """Correct answers on one fold's scored rows, from the family fitted on the other folds."""
    test, train = scored & fold, ~fold
    if not test.any() or len(np.unique(truth[train])) < 2:
        return 0
    model = FAMILIES[family].fit(rows[train], truth[train], config)
    return int((model.predict(rows[test]) == truth[test]).sum())


def check_loop(scenario: Scenario, summary: dict[str, Any]) -> None:
    """The promises a scenario makes; a broken one fails the run instead of writing a happy summary."""
    loop, reliability = summary["loop"], summary["reliability"]
    problems = []
    if loop["false_alarms"]:  # None: the change points are unknown, no detection can be called false
        rows = [d["row"] for d in loop["detections"]]
        problems.append(f"{loop['false_alarms']} false alarm(s) (detections at rows {rows})")
    for change in loop["changes"]:
        problems += _change_problems(change)
    if reliability["records_lost"]:
        problems.append(f"{reliability['records_lost']} records lost")
    if reliability["duplicates_ingested"]:
        problems.append(f"{reliability['duplicates_ingested']} records counted twice")
    for rollout in summary["rollouts"]:
        if rollout["bad_kind"] and rollout["outcome"] != "reverted":
            problems.append(f"bad candidate v{rollout['version']} ({rollout['bad_kind']}) was not stopped")
        if not rollout["bad_kind"] and rollout["outcome"] not in ("completed", UNFINISHED):  # the file ran out first
            problems.append(f"v{rollout['version']} did not complete its rollout ({rollout['outcome']})")
    if problems:
        raise EdgeloopError(f"scenario {scenario.name}: " + "; ".join(problems))


def _change_problems(change: dict[str, Any]) -> list[str]:
    """What is wrong with one change's detection and recovery (nothing: an empty list)."""
    at = change["at_row"]
    if change["detected_at_row"] is None:
        return [f"the change at row {at} was never detected"]
    recovered, post, oracle = change["recovered_accuracy"], change["post_drift_accuracy"], change["oracle_accuracy"]
    if recovered is None:
        return [f"no retrained version answered after the change at row {at}"]
    problems = []
    retrained = change.get("recovered_by", "retrained") == "retrained"
    if oracle is None and not retrained:
        return [f"no retrained version answered after the change at row {at}, and no oracle to judge the deployed one"]
    if retrained and post is not None and recovered <= post:
        problems.append(f"after row {at}: recovered accuracy {recovered} is not above {post}")
    if oracle is not None and recovered < oracle - ORACLE_GAP:
        problems.append(
            f"after row {at}: recovered accuracy {recovered} is more than 2 points below the oracle {oracle}"
            + ("" if retrained else " (no retrained version answered: the deployed one kept serving)")
        )
    return problems
