"""The accuracy gate as a table: metric values and sizes in, rejections and the selected variant out."""

from __future__ import annotations

import math

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.gate import decide

SIZES = {"fp32": 21000, "int8-dynamic": 8500, "int8-static": 7700}


@pytest.mark.parametrize(
    ("values", "bound", "selected", "rejected", "drop"),
    [
        # every variant within the bound: the smallest ships
        ({"fp32": 0.97, "int8-dynamic": 0.975, "int8-static": 0.965}, 0.01, "int8-static", [], 0.005),
        # exactly at the bound passes (0.97 - 0.96 must not become 0.010000000000000009)
        ({"fp32": 0.97, "int8-dynamic": 0.97, "int8-static": 0.96}, 0.01, "int8-static", [], 0.01),
        # the smallest loses too much: the next smallest ships
        ({"fp32": 0.97, "int8-dynamic": 0.965, "int8-static": 0.90}, 0.01, "int8-dynamic", ["int8-static"], 0.005),
        # both compressed variants lose too much: fp32 ships, still a pass
        ({"fp32": 0.97, "int8-dynamic": 0.95, "int8-static": 0.10}, 0.01, "fp32", ["int8-dynamic", "int8-static"], 0.0),
        # a zero bound tolerates no loss at all, but a gain is fine
        ({"fp32": 0.97, "int8-dynamic": 0.9699, "int8-static": 0.98}, 0.0, "int8-static", ["int8-dynamic"], -0.01),
        # a looser bound lets a bigger drop through
        ({"fp32": 0.97, "int8-dynamic": 0.95, "int8-static": 0.94}, 0.05, "int8-static", [], 0.03),
        # only the reference was built (a tree ensemble)
        ({"fp32": 0.96}, 0.01, "fp32", [], 0.0),
        # a variant whose metric is NaN never ships
        ({"fp32": 0.97, "int8-static": math.nan}, 0.01, "fp32", ["int8-static"], 0.0),
    ],
)
def test_variants_over_the_bound_are_rejected_and_the_smallest_survivor_is_selected(
    values: dict[str, float], bound: float, selected: str, rejected: list[str], drop: float
) -> None:
    decision = decide(values, SIZES, bound=bound)
    assert decision.selected == selected
    assert sorted(decision.gate.rejected) == rejected
    assert decision.gate.drop == pytest.approx(drop, abs=1e-9)
    assert decision.gate.passed
    assert decision.failure is None
    assert (decision.gate.metric, decision.gate.bound, decision.gate.reference) == ("accuracy", bound, "fp32")


def test_the_rejection_reason_names_the_metric_the_drop_and_the_bound() -> None:
    decision = decide({"fp32": 0.97, "int8-dynamic": 0.9}, SIZES, metric="macro_f1", bound=0.02)
    assert decision.gate.rejected == {"int8-dynamic": "macro_f1 drop 0.0700 exceeds the bound 0.0200"}
    assert decision.gate.metric == "macro_f1"


def test_a_size_tie_goes_to_the_higher_precision() -> None:
    decision = decide({"fp32": 0.9, "int8-dynamic": 0.9}, {"fp32": 100, "int8-dynamic": 100})
    assert decision.selected == "fp32"


def test_a_variant_within_the_bound_but_under_the_minimum_is_rejected() -> None:
    decision = decide({"fp32": 0.905, "int8-dynamic": 0.899, "int8-static": 0.91}, SIZES, minimum=0.9)
    assert decision.gate.rejected == {"int8-dynamic": "accuracy 0.8990 is below the minimum 0.9000"}
    assert decision.selected == "int8-static"
    assert decision.gate.passed
    assert decision.gate.minimum == 0.9


def test_a_reference_under_the_minimum_fails_the_gate_and_nothing_compressed_ships() -> None:
    decision = decide({"fp32": 0.85, "int8-dynamic": 0.95, "int8-static": 0.84}, SIZES, minimum=0.9)
    assert not decision.gate.passed
    assert decision.selected == "fp32"
    assert decision.gate.drop == 0.0
    assert decision.failure == "fp32 accuracy 0.8500 is below the minimum 0.9000"
    assert sorted(decision.gate.rejected) == ["int8-dynamic", "int8-static"]
    assert all(reason.startswith("the reference failed: ") for reason in decision.gate.rejected.values())


def test_a_reference_exactly_at_the_minimum_passes() -> None:
    assert decide({"fp32": 0.9}, SIZES, minimum=0.9).gate.passed


@pytest.mark.parametrize(
    ("values", "sizes", "minimum", "message"),
    [
        ({"int8-dynamic": 0.9}, SIZES, None, "gate.reference: no finite metric for the reference variant 'fp32'"),
        ({"fp32": math.nan}, SIZES, None, "gate.reference: no finite metric"),
        ({"fp32": 0.9, "int4": 0.9}, SIZES, None, "gate.variants: unknown precision(s) ['int4']"),
        ({"fp32": 0.9, "int8-static": 0.9}, {"fp32": 1}, None, "gate.sizes: no size (bytes >= 1) for variant(s)"),
        ({"fp32": 0.9}, {"fp32": 0}, None, "gate.sizes: no size"),
        ({"fp32": 0.9}, SIZES, 1.5, "gate.minimum: 1.5 is outside [0, 1]"),
    ],
)  # fmt: skip
def test_a_question_without_a_sound_answer_is_refused_by_name(
    values: dict[str, float], sizes: dict[str, int], minimum: float | None, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        decide(values, sizes, minimum=minimum)
    assert str(caught.value).startswith(message)


def test_a_bound_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^gate.bound: 1.5 is outside \[0, 1\]"):
        decide({"fp32": 0.9}, SIZES, bound=1.5)
