"""What a buffer stores for a payload: JSON text, or a RESULT record's columns as inference made them.

Encoding a micro-batch's RESULT record as JSON (float formatting above all) was most of the group commit's cost on
the serve loop. Staging hands the buffer StagedResults instead: their columns are stored in one C pass (pickle, read
back by an unpickler that refuses every global, so a stored row can only ever become lists, strings and numbers) and
become the very payload result_payload builds when the record is read to be forwarded, where it is encoded anyway.
A row stored as JSON text (every other payload, and every row an older version buffered) reads back as before.
A buffer's byte bound counts what it stores: the columns' bytes for such a record, the JSON text's for the others.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from edgeloop.core.errors import StoreError, ValidationError
from edgeloop.core.records import result_payload

ResultColumns = tuple[Sequence[str], Sequence[int], Sequence[str], Sequence[float], int, float]
"""One RESULT record's results as core.records.result_payload's arguments: request ids, label indices, label
names, confidences, model version, latency (ms). Valid by construction (ids and outputs are checked before),
kept as plain columns until the buffer stores them or infer's caller asks for answers."""

Stored = str | bytes
"""A stored row's payload: JSON text, or COLUMNS_TAG and a RESULT record's columns."""
COLUMNS_TAG = b"RC1"
"""Leads every stored columns row: the format's name and version (JSON text never starts with it)."""
_PROTOCOL = 5
_CONTAINERS = frozenset({list, tuple})
_STR, _INT, _FLOAT = frozenset({str}), frozenset({int}), frozenset({float})


class StagedResults(Mapping[str, Any]):
    """A RESULT payload still in columns: reads as result_payload's dict (built on first use), stored as columns."""

    __slots__ = ("_payload", "columns", "plain")

    def __init__(self, columns: ResultColumns, *, plain: bool = False) -> None:
        """plain: the producer vouches every cell is a plain str/int/finite float (the inference path's columns)."""
        self.columns = columns
        self.plain = plain
        self._payload: dict[str, Any] | None = None

    def _dict(self) -> dict[str, Any]:
        if self._payload is None:
            self._payload = result_payload(*self.columns)
        return self._payload

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())


def stored_form(payload: Mapping[str, Any]) -> Stored:
    """What a buffer keeps for one payload (its length is the payload's size against the bound)."""
    if type(payload) is StagedResults:
        blob = _columns_blob(payload.columns, payload.plain)
        if blob is not None:
            return blob
        return payload_json(result_payload(*payload.columns))
    return payload_json(payload)


def _columns_blob(columns: ResultColumns, plain: bool = False) -> bytes | None:
    """The columns' stored bytes; None for anything but plain lists of str/int/float and finite numbers.

    Anything else (a numpy scalar, a bool, a NaN) takes the JSON path, which stores it or refuses it as before.
    Columns the producer vouches for as plain skip the per-cell checks (a third of a micro-batch's commit cost);
    only the inference path, whose cells are plain by construction (tests/device/test_device_inference.py
    checks it), may claim it: a numpy scalar in a cell would be pickled with a global, which payload_of refuses.
    """
    ids, indices, labels, confidences, version, latency_ms = columns
    if (
        type(version) is not int
        or type(latency_ms) is not float
        or not {type(ids), type(indices), type(labels), type(confidences)} <= _CONTAINERS
    ):
        return None
    if plain:
        return COLUMNS_TAG + pickle.dumps(columns, _PROTOCOL)
    if (
        not {*map(type, ids), *map(type, labels)} <= _STR
        or not {*map(type, indices)} <= _INT
        or not {*map(type, confidences)} <= _FLOAT
        or not math.isfinite(latency_ms + sum(confidences))
    ):
        return None
    return COLUMNS_TAG + pickle.dumps(columns, _PROTOCOL)


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle builds without a global (containers, strings, numbers): a row cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a stored row names {module}.{name}; only plain columns are read")


def payload_of(stored: Stored) -> dict[str, Any]:
    """The payload a stored row holds: JSON text parsed, or stored columns as result_payload's dict."""
    if isinstance(stored, str):
        try:
            parsed = json.loads(stored)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise StoreError(f"a stored row is not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise StoreError(f"a stored row is JSON {type(parsed).__name__}, not an object")
        return parsed
    if not stored.startswith(COLUMNS_TAG):
        raise StoreError(f"a stored row starts with {bytes(stored[:8])!r}, neither JSON text nor {COLUMNS_TAG!r}")
    try:
        columns = _PlainUnpickler(io.BytesIO(stored[len(COLUMNS_TAG) :])).load()
        return result_payload(*columns)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, MemoryError) as exc:
        raise StoreError(f"a stored RESULT row is unreadable: {exc}") from exc


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _one_shot_encoder() -> Callable[[Any], str]:
    """The C encoder JSONEncoder.encode builds anew on every call, built once (a third of a small append's cost).

    Same options, output and errors as _ENCODER.encode, except that a circular payload hits the recursion
    limit instead of the circular-reference check (both are refused). Falls back where there is no C encoder.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    iterencode = make(None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
    return lambda payload: "".join(iterencode(payload, 0))


_encode = _one_shot_encoder()


def payload_json(payload: Mapping[str, Any]) -> str:
    """JSON text of one payload (ASCII, so its length is its size in bytes), refusing what the wire cannot carry."""
    if not isinstance(payload, Mapping):
        raise ValidationError("payload", f"expected an object, got {type(payload).__name__}")
    try:
        return _encode(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError("payload", f"is not JSON-serialisable ({exc})") from exc
