"""The scenario world: drift events change what a device sees from their moment on, for their share of devices;
a file streams once in file order, a built-in set cycles."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.local.sim.scenario import MAX_DURATION_S, DriftEvent, Scenario
from edgeloop.local.world import FeatureScale, World, affected, apply_drift, load_stream, stream_once_s

ROWS = np.tile(np.arange(4, dtype=np.float64), (6, 1)) + 5.0
LABELS = np.array([0, 1, 2, 0, 1, 2])
SCALE = FeatureScale(std=np.array([1.0, 2.0, 0.0, 1.0]), minimum=0.0, maximum=16.0)


def see(
    events: list[DriftEvent], now: float = 100.0, device: int = 0, devices: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    return apply_drift(
        ROWS, LABELS, events, now_s=now, device_index=device, devices=devices, scale=SCALE, classes=3,
        rng=np.random.default_rng(0),
    )  # fmt: skip


def test_nothing_changes_before_the_event_or_outside_its_share() -> None:
    shift = DriftEvent("shift", at_s=50, share=0.5, magnitude=1.0)
    for rows, labels in (see([shift], now=49.0), see([shift], device=2)):
        assert np.array_equal(rows, ROWS)
        assert np.array_equal(labels, LABELS)
    assert [affected(shift, i, 4) for i in range(4)] == [True, True, False, False]


def test_a_shift_moves_every_feature_by_its_std_and_stays_in_range() -> None:
    rows, labels = see([DriftEvent("shift", at_s=0, share=1.0, magnitude=2.0)])
    assert np.allclose(rows[0], [7.0, 10.0, 9.0, 10.0]), "a constant feature moves by one unit"
    assert np.array_equal(labels, LABELS)
    far, _ = see([DriftEvent("shift", at_s=0, share=1.0, magnitude=50.0)])
    assert far.max() == 16.0


def test_noise_is_random_but_centred() -> None:
    rows, _ = see([DriftEvent("noise", at_s=0, share=1.0, magnitude=0.5)])
    assert not np.array_equal(rows, ROWS)
    assert abs(float((rows - ROWS).mean())) < 0.5


def test_a_rotation_mixes_neighbouring_features() -> None:
    rows, _ = see([DriftEvent("rotation", at_s=0, share=1.0, magnitude=np.pi / 2)])
    assert np.allclose(rows[0], np.roll(ROWS[0], -1))


def test_a_concept_drift_moves_labels_not_inputs() -> None:
    rows, labels = see([DriftEvent("concept", at_s=0, share=1.0, magnitude=1)])
    assert np.array_equal(rows, ROWS)
    assert list(labels) == [1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("share", [0.01, 0.25, 1.0])
def test_a_share_covers_at_least_one_device(share: float) -> None:
    event = DriftEvent("shift", at_s=0, share=share, magnitude=1.0)
    assert affected(event, 0, 4)


class _Device:
    """Records what the world hands it (the stepped device's step, without a runtime)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[float]]] = []

    def step(self, requests: Any) -> None:
        self.requests.extend(requests)


class _Clock:
    now = 1000.0


def _world(scenario: Scenario, rows: int, **kwargs: Any) -> World:
    fleet = {f"d{i}": _Device() for i in range(scenario.devices)}
    x = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2)
    return World(scenario, fleet, x, np.arange(rows) % 2, FeatureScale(np.ones(2), -1e9, 1e9), 2,  # type: ignore[arg-type]
                 _Clock(), np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]  # fmt: skip


def _file_scenario(**changes: Any) -> Scenario:
    data = {"dataset": "/data/s.csv", "initial_rows": 10, "devices": 3, "requests_per_s": 0.5, "step_s": 10.0,
            **changes}  # fmt: skip
    return Scenario.from_dict(data)


def test_a_file_streams_every_row_once_in_file_order_then_is_exhausted() -> None:
    world = _world(dataclasses.replace(_file_scenario(), duration_s=100.0), rows=23, cycle=False)
    while not world.exhausted:
        world.tick()
    world.tick()  # nothing more comes
    assert world.steps == 3, "5 rows per device per step: 15, then the last 8"
    assert world.ledger.row[: world.ledger.size].tolist() == list(range(23)), "each row once, in file order"
    sent = [row[0] / 2 for d in world.fleet.values() for _, row in d.requests]  # type: ignore[attr-defined]
    assert sorted(sent) == list(range(23))
    assert [world.file_row(i) for i in (0, 22)] == [10, 32], "file row = initial_rows + stream row"
    with pytest.raises(IndexError):
        world.file_row(23)


def test_a_cycling_stream_starts_over_and_maps_through_its_file_rows() -> None:
    world = _world(dataclasses.replace(_file_scenario(), duration_s=100.0), rows=7, file_rows=np.arange(7)[::-1])
    for _ in range(2):
        world.tick()
    assert not world.exhausted
    assert world.ledger.row[: world.ledger.size].tolist() == [*range(7), *range(7), *range(7), *range(7), 0, 1]
    assert world.file_row(0) == 6


@pytest.mark.parametrize(("rows", "devices", "per_s", "step_s"), [(23, 3, 0.5, 10.0), (6800, 5, 2.0, 30.0),
                                                                   (100, 1, 0.3, 7.0), (1, 4, 0.01, 30.0)])  # fmt: skip
def test_stream_once_s_is_the_whole_steps_the_world_takes_to_stream_every_row(
    rows: int, devices: int, per_s: float, step_s: float
) -> None:
    duration = stream_once_s(rows, devices, per_s, step_s, MAX_DURATION_S)
    assert duration is not None
    scenario = dataclasses.replace(_file_scenario(devices=devices, requests_per_s=per_s, step_s=step_s),
                                   duration_s=duration)  # fmt: skip
    world = _world(scenario, rows=rows, cycle=False)
    for _ in range(round(duration / step_s)):
        assert not world.exhausted
        world.tick()
    assert world.exhausted
    assert world.ledger.size == rows
    assert stream_once_s(10**9, 1, 0.01, 1.0, MAX_DURATION_S) is None


def _csv(tmp_path: Path, rows: int) -> Path:
    lines = ["t,x0,x1,label", *(f"{1000 + i},{i},{i % 5},{i % 2}" for i in range(rows))]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "s.csv"


def test_load_stream_splits_a_file_in_order_and_fixes_its_duration(tmp_path: Path) -> None:
    _csv(tmp_path, 40)
    scenario = Scenario.from_dict({"dataset": "s.csv", "exclude_columns": ["t"], "initial_rows": 10, "devices": 2,
                                   "requests_per_s": 0.5, "step_s": 10.0, "drift_at_rows": [20]}, tmp_path)  # fmt: skip
    data = load_stream(scenario, seed=3)
    assert data.feature_names == ("x0", "x1")
    assert data.initial_x[:, 0].tolist() == list(range(10))
    assert data.stream_x[:, 0].tolist() == list(range(10, 40))
    assert data.file_rows.tolist() == list(range(10, 40))
    assert not data.cycle
    assert data.scenario.duration_s == 30.0, "30 rows at 5 per device per step on 2 devices: 3 steps"
    assert data.scenario.drift_at_rows == (20,)
    timed = dataclasses.replace(scenario, duration_s=500.0)
    assert load_stream(timed, seed=3).cycle
    assert load_stream(timed, seed=3).scenario.duration_s == 500.0


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"drift_at_rows": [39]}, "scenario.drift_at_rows", "39 is not before the last row (39)"),
        ({"initial_rows": 40}, "scenario.initial_rows", "leaves no rows to stream"),
        ({"requests_per_s": 0.00001, "step_s": 1.0}, "scenario.duration_s", "takes over 604800 s"),
        ({"exclude_columns": ["ts"]}, "s.csv header", "no column 'ts' to exclude"),
        ({"dataset": "gone.csv"}, str(Path("gone.csv")), "does not exist"),
        ({"drift": [{"kind": "shift", "at_s": 90, "magnitude": 1}]}, "drift[].at_s", "not before duration_s 60"),
    ],
)
def test_load_stream_refuses_what_the_file_cannot_honour(
    tmp_path: Path, changes: dict[str, Any], field: str, message: str
) -> None:
    _csv(tmp_path, 40)
    base = {"dataset": "s.csv", "exclude_columns": ["t"], "initial_rows": 10, "devices": 1, "requests_per_s": 0.5,
            "step_s": 10.0}  # fmt: skip
    with pytest.raises(ValidationError) as info:
        load_stream(Scenario.from_dict({**base, **changes}, tmp_path), seed=0)
    assert info.value.field.endswith(field)
    assert message in info.value.message


def test_a_built_in_set_is_shuffled_once_and_cycles() -> None:
    scenario = Scenario.from_dict({"name": "b", "dataset": "builtin:iris", "initial_rows": 50, "devices": 1,
                                   "duration_s": 60.0})  # fmt: skip
    data = load_stream(scenario, seed=0)
    assert data.cycle
    assert data.file_rows.tolist() != list(range(50, 150)), "shuffled by the seed"
    assert len(set(data.file_rows.tolist())) == len(data.file_rows) == 100, "each row at most once"
