"""The reliability table: confidence bands with holdout rows and errors, parsed strictly (hypothesis mangles it)."""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.core.calibrated import band_of
from edgeloop.core.errors import ValidationError
from edgeloop.core.manifest import MAX_BANDS, Reliability

TABLE = Reliability((0.6, 0.9), (40, 50, 60), (20, 10, 1))


def test_bands_are_half_open_and_the_ends_are_open_ended() -> None:
    assert [band_of(TABLE, c) for c in (0.1, 0.5999, 0.6, 0.89, 0.9, 1.0)] == [0, 0, 1, 1, 2, 2]
    assert (band_of(TABLE, -1.0), band_of(TABLE, 2.0)) == (0, 2)
    assert (sum(TABLE.rows), sum(TABLE.errors)) == (150, 31)


def test_a_single_band_table_is_allowed() -> None:
    table = Reliability((), (300,), (12,))
    assert band_of(table, 0.99) == 0
    assert Reliability.from_dict(table.to_dict()) == table


@pytest.mark.parametrize(
    ("edges", "rows", "errors", "field"),
    [
        ((0.9, 0.6), (1, 1, 1), (0, 0, 0), "edges"),
        ((0.6, 0.6), (1, 1, 1), (0, 0, 0), "edges"),
        ((0.0,), (1, 1), (0, 0), "edges"),
        ((math.nan,), (1, 1), (0, 0), "edges"),
        ((0.5,), (1, 1, 1), (0, 0, 0), "rows"),
        ((0.5,), (1, 1), (0,), "rows"),
        ((0.5,), (1, 1), (2, 0), "rows"),
        ((0.5,), (3, -1), (0, 0), "rows"),
        ((0.5,), (0, 0), (0, 0), "rows"),
        (tuple(i / 100 for i in range(1, MAX_BANDS + 1)), (1,) * (MAX_BANDS + 1), (0,) * (MAX_BANDS + 1), "edges"),
    ],
)
def test_a_bad_table_names_its_field(
    edges: tuple[float, ...], rows: tuple[int, ...], errors: tuple[int, ...], field: str
) -> None:
    """field: what is wrong (the error names the table)."""
    with pytest.raises(ValidationError, match=r"baseline\.reliability"):
        Reliability(edges, rows, errors)


def _mutated(rng: random.Random, value: Any) -> Any:
    """A random edit somewhere in a JSON value: drop or add a key, change a type, a sign, a length."""
    junk = rng.choice([None, True, -1, 2**40, 1.5, math.nan, 0.5, "x", [], {}, [1, 2, 3]])
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        edit = rng.random()
        if edit < 0.15:
            return {k: v for k, v in value.items() if k != key}
        if edit < 0.3:
            return {**value, "unexpected": junk}
        return {**value, key: _mutated(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        return [*value[:i], _mutated(rng, value[i]), *value[i + 1 :]]
    return junk


@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_a_mangled_table_parses_or_raises_validation_error_only(rng: random.Random) -> None:
    try:
        parsed = Reliability.from_dict(_mutated(rng, TABLE.to_dict()))
    except ValidationError:
        return
    assert Reliability.from_dict(parsed.to_dict()) == parsed


@settings(max_examples=300, deadline=None)
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(["edges", "rows", "errors", "x"]), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_any_json_value_parses_or_raises_validation_error_only(data: Any) -> None:
    with contextlib.suppress(ValidationError):
        Reliability.from_dict(data)
