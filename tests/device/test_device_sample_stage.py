"""The sampling stage's shortcuts (vectorized masks, the batch-1 precheck) make exactly the core samplers' decisions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edgeloop.core.manifest import InputSchema
from edgeloop.core.privacy import PrivacyPolicy
from edgeloop.core.sample_budget import BudgetPolicy, raw_reading_bytes
from edgeloop.core.sample_payload import Sample
from edgeloop.core.samplers import SAMPLERS, SampleSignals, choose_sampler, parse_samplers, payload_bytes
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.sample_stage import VECTOR_SAMPLERS, SampleStage


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


def stage_for(samplers: dict[str, float], **keys: Any) -> SampleStage:
    """A sampling stage over a stand-in model: the stage reads only the manifest's input, names and labels."""
    schema = InputSchema("input", "float32", ("a", "b"), 0.0, 1.0)
    model = SimpleNamespace(manifest=SimpleNamespace(input=schema, model_name="m", labels=("x", "y")), version=1)
    config = DeviceConfig(samplers=tuple(samplers.items()), privacy=PrivacyPolicy(allow_raw=True), **keys)
    return SampleStage(config, model, np.random.default_rng(0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "samplers",
    [
        {"random": 0.2},
        {"low_confidence": 0.5, "small_margin": 0.2},
        {"drifted": 0.3},
        {"random": 0.05, "low_confidence": 0.4, "small_margin": 0.1, "drifted": 0.5},
    ],
    ids=["random", "hard", "drifted", "all"],
)
def test_the_batch_1_shortcut_names_what_the_core_names(samplers: dict[str, float]) -> None:
    stage = stage_for(samplers)
    rng = np.random.default_rng(13)
    draws: list[float] = []

    def draw() -> float:
        draws.append(float(rng.uniform()))
        return draws[-1]

    stage._draw = draw
    taken = 0
    for confidence, margin, drifted in zip(
        rng.uniform(0, 1, 3000), rng.uniform(0, 1, 3000), rng.uniform(0, 1, 3000) < 0.5, strict=True
    ):
        draws.clear()
        name = stage.pick_row(float(confidence), float(margin), bool(drifted))
        replay = iter(draws)
        control = next(replay) if "random" in samplers else 1.0
        drift = next(replay) if drifted and "drifted" in samplers else 1.0
        expected = choose_sampler(
            stage.settings, SampleSignals(float(confidence), float(margin), bool(drifted), control, drift)
        )
        assert name == expected
        taken += name is not None
    assert 0 < taken < 3000


def test_without_a_share_the_random_rate_is_the_configured_one() -> None:
    stage = stage_for({"random": 0.03, "low_confidence": 0.4})
    assert stage.random_rates == (0.03, 0.03)
    payload = stage.payload("r-1", np.array([0.2, 0.4]), 1, (0.9, 0.8, True, 0.31), "random")
    assert Sample.from_payload(payload).inclusion == 0.03


def test_under_a_share_the_budget_sets_the_random_rate_and_boosts_it_while_drifted() -> None:
    stage = stage_for({"random": 0.0, "low_confidence": 0.4}, sampleBudgetShare=0.05)
    stable, suspected = stage.random_rates
    row = np.array([0.2, 0.4])
    probe = stage.payload("r-1", row, 1, (0.9, 0.8, False, None), "random")
    stage.measured(payload_bytes(probe))
    assert stage.random_rates == (stable, suspected)  # a batch's payloads keep the rate their rows were drawn at
    stage.retune()
    expected = BudgetPolicy(0.05).random_rate(raw_reading_bytes(row.tolist()), payload_bytes(probe), False)
    assert stage.random_rates[0] == pytest.approx(expected)
    assert stage.random_rates[1] == pytest.approx(4 * stage.random_rates[0])
    assert 0 < stable < suspected < 1
    sample = Sample.from_payload(stage.payload("r-2", row, 1, (0.9, 0.8, True, 0.5), "random"))
    assert sample.inclusion == pytest.approx(stage.random_rates[1], rel=1e-5)
    hard = Sample.from_payload(stage.payload("r-3", row, 1, (0.3, 0.8, True, 0.5), "low_confidence"))
    assert hard.inclusion == 1.0


def test_the_stage_counts_the_readings_it_saw_and_draws_at_the_rate_in_force() -> None:
    stage = stage_for({"random": 0.0}, sampleBudgetShare=0.5)
    stable, suspected = stage.random_rates
    n = 40_000
    calm = stage.pick_batch(np.full(n, 0.99), np.full(n, 0.99), False)
    rows = [stage.pick_row(0.99, 0.99, True) for _ in range(n)]
    assert stage.served == 2 * n
    assert len(calm) == pytest.approx(stable * n, rel=0.2)
    assert sum(name == "random" for name in rows) == pytest.approx(suspected * n, rel=0.2)


def test_the_random_rate_prices_samples_at_the_wire_ratio_and_spends_a_surplus() -> None:
    stage = stage_for({"random": 0.0, "low_confidence": 0.4}, sampleBudgetShare=0.05)
    row = np.array([0.2, 0.4])
    stage.measured(payload_bytes(stage.payload("r-1", row, 1, (0.9, 0.8, False, None), "random")))
    stage.retune(0.0, 0.0, 1.0)
    at_json = stage.random_rates[0]
    stage.retune(0.0, 0.0, 0.25)  # batches travel at a quarter of their JSON: four times the samples
    assert stage.random_rates[0] == pytest.approx(4 * at_json)
    bank = BudgetPolicy(0.05).bank_samples * stage.sample_bytes * 0.25
    stage.retune(bank, 0.0, 0.25)
    assert stage.random_rates[0] == pytest.approx(4 * at_json)  # the bank is full: still filling
    stage.retune(1.5 * bank, 0.0, 0.25)
    assert stage.random_rates[0] == pytest.approx(8 * at_json)  # half a bank more: all the account earns
