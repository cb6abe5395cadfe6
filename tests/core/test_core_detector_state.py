"""The detector's stored state: strict parsing that names the field (the fuzz over both wire forms is in
test_core_detectors.py)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from edgeloop.core.detector_state import DetectorState, finite_number
from edgeloop.core.detectors import ErrorDetector, initial_state, observe
from edgeloop.core.errors import ValidationError


def _running_state() -> DetectorState:
    policy = ErrorDetector()
    rng = random.Random(1)
    state, _ = observe(initial_state(policy, 18, 180), [rng.random() < 0.2 for _ in range(500)], policy)
    return state


def test_a_running_state_round_trips_through_json() -> None:
    state = _running_state()
    assert state.monitored == 500
    assert DetectorState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_finite_number_refuses_booleans_and_non_finite_values() -> None:
    assert finite_number(2, "x") == 2.0
    for bad in (True, math.nan, "1", None):
        with pytest.raises(ValidationError):
            finite_number(bad, "x")


BAD_STATES: list[Any] = [
    ({"reference_errors": 500}, "detector_state.reference_errors"),
    ({"monitored": -1}, "detector_state.monitored"),
    ({"alarms": False}, "detector_state.alarms"),
    ({"cusums": [[0.0, 1]]}, "detector_state.cusums"),
    ({"cusums": [[-1.0, 0, 0]]}, "detector_state.cusums"),
    ({"cusums": [[1.0, 2, 3]]}, "detector_state.cusums"),
    ({"cusums": [[math.inf, 0, 0]]}, "detector_state.cusums"),
    ({"pending_trials": 10**6}, "detector_state.pending_trials"),
    ({"extra": 1}, "detector_state"),
]


@pytest.mark.parametrize(("change", "field"), BAD_STATES)
def test_a_bad_state_names_its_field(change: dict[str, Any], field: str) -> None:
    data = {**_running_state().to_dict(), **change}
    with pytest.raises(ValidationError) as info:
        DetectorState.from_dict(data)
    assert info.value.field == field
