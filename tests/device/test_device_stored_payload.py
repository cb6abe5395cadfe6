"""What a buffer stores for a payload: RESULT columns without JSON, every other payload (and old rows) as JSON text."""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

import numpy as np
import pytest

from edgeloop.core.errors import StoreError, ValidationError
from edgeloop.core.records import Record, RecordKind, encode_batch, result_payload
from edgeloop.device.stored_payload import (
    COLUMNS_TAG,
    ResultColumns,
    StagedResults,
    payload_json,
    payload_of,
    stored_form,
)

THING = "dev-1"


def columns(n: int = 3) -> ResultColumns:
    return (
        [f"req-{i}" for i in range(n)],
        [i % 10 for i in range(n)],
        [f"label-{i % 10}" for i in range(n)],
        [round(0.5 + i / (4 * n), 6) for i in range(n)],
        4,
        1.234567,
    )


def test_staged_results_read_as_the_payload_result_payload_builds() -> None:
    staged = StagedResults(columns())

    assert staged == result_payload(*columns())
    assert dict(staged) == result_payload(*columns())
    assert staged["request_ids"] == ["req-0", "req-1", "req-2"]
    assert len(staged) == 6


def test_columns_are_stored_tagged_and_read_back_as_the_json_row_would_be() -> None:
    stored = stored_form(StagedResults(columns(32)))
    old_row = payload_json(result_payload(*columns(32)))

    assert isinstance(stored, bytes)
    assert stored.startswith(COLUMNS_TAG)
    assert payload_of(stored) == json.loads(old_row) == payload_of(old_row)


def test_the_wire_message_is_the_same_whichever_way_the_record_was_stored() -> None:
    new = Record(THING, 1, RecordKind.RESULT, 5.0, payload_of(stored_form(StagedResults(columns(5)))))
    old = Record(THING, 1, RecordKind.RESULT, 5.0, payload_of(payload_json(result_payload(*columns(5)))))

    assert encode_batch(THING, [new]) == encode_batch(THING, [old])


def test_a_stored_row_is_a_snapshot_of_the_columns_at_append() -> None:
    cols = columns()
    stored = stored_form(StagedResults(cols))
    cols[0][0] = "changed"

    assert payload_of(stored)["request_ids"][0] == "req-0"


def test_other_payloads_are_stored_as_json_text() -> None:
    assert stored_form({"a": 1, "b": [1.5, None]}) == '{"a":1,"b":[1.5,null]}'


@pytest.mark.parametrize(
    "odd",
    [
        lambda c: (c[0], c[1], c[2], list(np.asarray(c[3])), c[4], c[5]),  # numpy floats
        lambda c: (c[0], [True, 1, 2], c[2], c[3], c[4], c[5]),  # a bool is not an index
        lambda c: (c[0], c[1], c[2], c[3], np.int64(4), c[5]),  # a numpy version
        lambda c: (c[0], np.asarray(c[1]), c[2], c[3], c[4], c[5]),  # a numpy column
    ],
)
def test_columns_that_are_not_plain_take_the_json_path(odd: Any) -> None:
    cols = odd(columns())
    try:
        expected: str | None = payload_json(result_payload(*cols))
    except ValidationError:
        expected = None
    if expected is None:
        with pytest.raises(ValidationError):
            stored_form(StagedResults(cols))
    else:
        assert stored_form(StagedResults(cols)) == expected


def test_a_non_finite_confidence_is_refused_as_before() -> None:
    ids, indices, labels, confidences, version, latency = columns()
    bad = (ids, indices, labels, [math.nan, *confidences[1:]], version, latency)

    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        stored_form(StagedResults(bad))


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("ran",))


def test_a_row_naming_a_global_is_refused_without_running_it(capsys: pytest.CaptureFixture[str]) -> None:
    crafted = COLUMNS_TAG + pickle.dumps(([Boom()], [], [], [], 1, 0.0), 5)

    with pytest.raises(StoreError, match=r"names builtins\.print"):
        payload_of(crafted)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        (b"garbage", "neither JSON text"),
        (COLUMNS_TAG + b"\x80\x05", "unreadable"),
        (COLUMNS_TAG + pickle.dumps((1, 2), 5), "unreadable"),
        ('{"kind": "RESU', "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
        ("[1, 2]", "JSON list, not an object"),
    ],
)
def test_a_damaged_row_is_a_clear_store_error(stored: bytes | str, match: str) -> None:
    with pytest.raises(StoreError, match=match):
        payload_of(stored)


@pytest.mark.parametrize("n", [1, 32])
def test_stored_columns_take_fewer_bytes_than_the_json_text(n: int) -> None:
    """docs/device.md: the same bufferMaxBytes holds more results than when they were stored as JSON."""
    assert len(stored_form(StagedResults(columns(n)))) < len(payload_json(result_payload(*columns(n))))
