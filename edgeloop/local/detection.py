"""Change detection in the scenario loop: the deployed version's errors on labelled samples, or the fleet's
label-free drift score held above its bound.

ADAPTER: `ddm_observe` is the smallest stand-in for the sequential detector edgeloop.core.detectors will
provide (`observe(state, errors, policy) -> (state, alarm)`, the detect branch); it is DDM (Gama et al.
2004): alarm when the error rate's upper band p + s passes p_min + 3 s_min.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DdmPolicy:
    """DDM's bounds: no alarm before min_samples errors are known; alarm at `alarm_sigmas` above the best band."""

    min_samples: int = 30
    alarm_sigmas: float = 3.0


@dataclass(frozen=True)
class DdmState:
    """Errors seen since the detector (re)started, and the lowest band so far."""

    n: int = 0
    errors: int = 0
    best: float = math.inf
    best_p: float = 0.0
    best_s: float = 0.0


def ddm_observe(state: DdmState, errors: Sequence[bool], policy: DdmPolicy) -> tuple[DdmState, bool]:
    """Fold errors in one by one; alarm (and stop folding) when the band passes the bound."""
    for error in errors:
        n, e = state.n + 1, state.errors + (1 if error else 0)
        p = (e + 1) / (n + 2)  # Laplace: a run of right answers is not a zero-variance error rate
        s = math.sqrt(p * (1 - p) / n)
        state = replace(state, n=n, errors=e)
        if n < policy.min_samples:
            continue
        if p + s < state.best:
            state = replace(state, best=p + s, best_p=p, best_s=s)
        if p + s > state.best_p + policy.alarm_sigmas * state.best_s:
            return state, True
    return state, False


@dataclass(frozen=True)
class Detection:
    """One alarm: when (simulated s), the stream position (ledger index) and file row then, and what fired."""

    t_s: float
    index: int
    row: int
    source: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """As summary.json lists it."""
        return {"t_s": round(self.t_s, 1), "row": self.row, "source": self.source, "text": self.text}


class ChangeWatch:
    """The labelled-error detector on the live version, and the fleet drift clock; one alarm per open change.

    A change is open from its detection until a retrained version goes live (`restart`): while open, no
    second alarm is raised (one change, one detection); the detector then restarts on the new version's errors.
    """

    def __init__(self, policy: DdmPolicy | None = None) -> None:
        self.policy = policy or DdmPolicy()
        self.state = DdmState()
        self.live_version = 0
        self.open = False
        self.errors: list[tuple[int, bool]] = []
        """(stream index, error) of the live version's labelled samples since it went live, in label order."""

    def restart(self, version: int) -> None:
        """A new version is live: its errors start a fresh detector, and any open change is closed."""
        self.live_version, self.state, self.open, self.errors = version, DdmState(), False, []

    def labelled(self, answered: Sequence[tuple[int, int, bool]]) -> bool:
        """(stream index, answering version, error) of new labels: True when the live version's errors alarm."""
        mine = [(index, error) for index, version, error in answered if version == self.live_version]
        self.errors.extend(mine)
        if self.open or not mine:
            return False
        self.state, alarm = ddm_observe(self.state, [e for _, e in mine], self.policy)
        return alarm
