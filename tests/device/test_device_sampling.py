"""The sampling stage's vectorized masks make exactly the core samplers' decisions."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.core.sampling import SAMPLERS, SampleSignals, choose_sampler, parse_samplers
from edgeloop.device.sampling import VECTOR_SAMPLERS


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("drifted", [False, True])
def test_each_vector_sampler_agrees_with_the_core(name: str, drifted: bool) -> None:
    rng = np.random.default_rng(11)
    confidences, margins = rng.uniform(0, 1, 2000), rng.uniform(0, 1, 2000)
    controls, drifts = rng.uniform(0, 1, 2000), rng.uniform(0, 1, 2000)
    for parameter in (0.0, 0.05, 0.5, 1.0):
        mask = VECTOR_SAMPLERS[name](confidences, margins, drifted, controls, drifts, parameter)
        expected = [
            SAMPLERS[name](SampleSignals(c, m, drifted, u, v), parameter)
            for c, m, u, v in zip(
                confidences.tolist(), margins.tolist(), controls.tolist(), drifts.tolist(), strict=True
            )
        ]
        assert mask.tolist() == expected


def test_the_union_of_masks_is_what_choose_sampler_takes() -> None:
    rng = np.random.default_rng(12)
    settings = parse_samplers({"random": 0.01, "low_confidence": 0.3, "small_margin": 0.05, "drifted": 0.1})
    columns = [rng.uniform(0, 1, 5000) for _ in range(4)]
    wanted = np.zeros(5000, dtype=bool)
    for name, parameter in settings:
        wanted |= VECTOR_SAMPLERS[name](columns[0], columns[1], True, columns[2], columns[3], parameter)
    chosen = [
        choose_sampler(settings, SampleSignals(c, m, True, u, v)) is not None
        for c, m, u, v in zip(*(col.tolist() for col in columns), strict=True)
    ]
    assert wanted.tolist() == chosen
    assert 0 < sum(chosen) < 5000
