"""The scenario world: drift events change what a device sees from their moment on, for their share of devices."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.local.sim.scenario import DriftEvent
from edgeloop.local.world import FeatureScale, affected, apply_drift

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
