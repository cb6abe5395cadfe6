"""Strict readers for JSON-shaped dicts: every wire format parses through these, so errors read alike."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from edgeloop.core.errors import ValidationError


def mapping(value: object, where: str) -> Mapping[str, Any]:
    """A JSON object, or a ValidationError naming where it was expected."""
    if not isinstance(value, Mapping):
        raise ValidationError(where, f"expected an object, got {type(value).__name__}")
    return value


def only_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Refuse unknown keys: a typo in a config or manifest must not be silently ignored."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(where, f"unknown key(s) {unknown}; expected some of {sorted(allowed)}")


def _get(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ValidationError(f"{where}.{key}", "is required")
    return data[key]


def text(data: Mapping[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    """A required string field."""
    value = _get(data, key, where)
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ValidationError(f"{where}.{key}", f"expected a non-empty string, got {value!r}")
    return value


def integer(data: Mapping[str, Any], key: str, where: str, *, minimum: int | None = None) -> int:
    """A required integer field (booleans are not integers here)."""
    value = _get(data, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{where}.{key}", f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValidationError(f"{where}.{key}", f"must be >= {minimum}, got {value}")
    return value


def number(data: Mapping[str, Any], key: str, where: str) -> float:
    """A required finite number field."""
    value = _get(data, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{where}.{key}", f"expected a finite number, got {value!r}")
    return float(value)


def sequence(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """A required JSON array field."""
    value = _get(data, key, where)
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{where}.{key}", f"expected a list, got {type(value).__name__}")
    return list(value)


def string_map(data: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    """A required object whose values are all strings."""
    value = mapping(_get(data, key, where), f"{where}.{key}")
    for k, v in value.items():
        if not isinstance(v, str):
            raise ValidationError(f"{where}.{key}.{k}", f"expected a string, got {v!r}")
    return dict(value)
