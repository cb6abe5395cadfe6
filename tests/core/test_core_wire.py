"""The strict readers every wire format parses through: wrong types and unknown keys are errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError


def test_mapping_accepts_objects_and_names_where_otherwise() -> None:
    assert wire.mapping({"a": 1}, "doc") == {"a": 1}
    with pytest.raises(ValidationError, match=r"^doc: expected an object, got list$"):
        wire.mapping([1], "doc")


def test_only_keys_lists_the_unknown_keys() -> None:
    wire.only_keys({"a": 1}, {"a", "b"}, "doc")
    with pytest.raises(ValidationError) as info:
        wire.only_keys({"a": 1, "zz": 2, "yy": 3}, {"a"}, "doc")
    assert info.value.field == "doc"
    assert "['yy', 'zz']" in info.value.message


READ_OK: list[Any] = [
    pytest.param(wire.text, "hello", "hello", id="text"),
    pytest.param(wire.integer, 7, 7, id="integer"),
    pytest.param(wire.number, 7, 7.0, id="number-int"),
    pytest.param(wire.number, 0.5, 0.5, id="number-float"),
    pytest.param(wire.sequence, (1, 2), [1, 2], id="sequence-tuple"),
    pytest.param(wire.string_map, {"k": "v"}, {"k": "v"}, id="string_map"),
]


@pytest.mark.parametrize(("reader", "value", "expected"), READ_OK)
def test_readers_return_valid_values(reader: Callable[..., Any], value: Any, expected: Any) -> None:
    result = reader({"key": value}, "key", "doc")
    assert result == expected
    assert type(result) is type(expected)


READ_BAD: list[Any] = [
    pytest.param(wire.text, "", "doc.key", id="text-empty"),
    pytest.param(wire.text, 5, "doc.key", id="text-int"),
    pytest.param(wire.integer, True, "doc.key", id="integer-bool"),
    pytest.param(wire.integer, 1.0, "doc.key", id="integer-float"),
    pytest.param(wire.integer, "1", "doc.key", id="integer-str"),
    pytest.param(wire.number, False, "doc.key", id="number-bool"),
    pytest.param(wire.number, math.nan, "doc.key", id="number-nan"),
    pytest.param(wire.number, -math.inf, "doc.key", id="number-inf"),
    pytest.param(wire.number, "0.5", "doc.key", id="number-str"),
    pytest.param(wire.sequence, "abc", "doc.key", id="sequence-str"),
    pytest.param(wire.sequence, {"a": 1}, "doc.key", id="sequence-dict"),
    pytest.param(wire.string_map, ["a"], "doc.key", id="string_map-list"),
    pytest.param(wire.string_map, {"k": 1}, "doc.key.k", id="string_map-int-value"),
]


@pytest.mark.parametrize(("reader", "value", "field"), READ_BAD)
def test_readers_refuse_wrong_types_naming_the_field(reader: Callable[..., Any], value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        reader({"key": value}, "key", "doc")
    assert info.value.field == field


@pytest.mark.parametrize(
    "reader", [wire.text, wire.integer, wire.number, wire.sequence, wire.string_map], ids=lambda r: r.__name__
)
def test_missing_key_is_required(reader: Callable[..., Any]) -> None:
    with pytest.raises(ValidationError, match=r"^doc\.key: is required$"):
        reader({}, "key", "doc")


def test_text_allow_empty_and_integer_minimum() -> None:
    assert wire.text({"key": ""}, "key", "doc", allow_empty=True) == ""
    assert wire.integer({"key": 0}, "key", "doc", minimum=0) == 0
    with pytest.raises(ValidationError, match=r"^doc\.key: must be >= 1, got 0$"):
        wire.integer({"key": 0}, "key", "doc", minimum=1)
