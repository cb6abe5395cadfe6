"""Records and batches: lossless encoding, strict decoding, and size-bounded ordered splitting."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.records import (
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_ID_CHARS,
    MAX_RESULTS_PER_RECORD,
    InferenceBatch,
    InferenceResult,
    Record,
    RecordKind,
    decode_batch,
    encode_batch,
    split_by_size,
)

MakeRecord = Callable[..., Record]
THING = "edge-dev-1"


def test_record_kind_order_is_priority() -> None:
    assert sorted([RecordKind.RESULT, RecordKind.SAMPLE, RecordKind.ALERT, RecordKind.EVENT]) == [
        RecordKind.ALERT,
        RecordKind.EVENT,
        RecordKind.SAMPLE,
        RecordKind.RESULT,
    ]
    assert RecordKind.ALERT < RecordKind.EVENT < RecordKind.SAMPLE < RecordKind.RESULT


@pytest.mark.parametrize("kind", list(RecordKind), ids=lambda k: k.name)
def test_record_kind_parses_its_wire_name(kind: RecordKind) -> None:
    assert RecordKind.parse(kind.name.lower()) is kind


@pytest.mark.parametrize("name", ["ALERT", "debug", "", 0, None], ids=["upper", "unknown", "empty", "int", "null"])
def test_record_kind_refuses_other_names(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        RecordKind.parse(name)
    assert info.value.field == "kind"


def test_batch_round_trip(make_record: MakeRecord) -> None:
    records = [
        make_record(1, kind=RecordKind.RESULT),
        make_record(2, kind=RecordKind.ALERT, reason="drift", score=0.75),
        make_record(3, kind=RecordKind.SAMPLE, features=[1.5, -2.0], nested={"a": [1, {"b": None}]}),
        make_record(10, kind=RecordKind.EVENT, text='quote " backslash \\ unicode é'),
    ]
    payload = encode_batch(THING, records)
    assert isinstance(payload, bytes)
    assert decode_batch(payload) == tuple(records)


def test_empty_batch_round_trip() -> None:
    assert decode_batch(encode_batch(THING, [])) == ()


def test_encoded_batch_shape(make_record: MakeRecord) -> None:
    body = json.loads(encode_batch(THING, [make_record(4, kind=RecordKind.EVENT, x=1)]))
    assert body == {
        "thing_name": THING,
        "records": [{"seq": 4, "kind": "event", "at": 1_795_000_000.5, "payload": {"x": 1}}],
    }


def test_records_from_another_thing_are_refused(make_record: MakeRecord) -> None:
    records = [make_record(1), make_record(2, thing_name="edge-dev-2")]
    with pytest.raises(ValidationError) as info:
        encode_batch(THING, records)
    assert info.value.field == "records"


def _batch(**record_changes: Any) -> bytes:
    record = {"seq": 1, "kind": "result", "at": 1.5, "payload": {}}
    record.update(record_changes)
    return json.dumps({"thing_name": THING, "records": [record]}).encode()


BAD_BATCHES: list[Any] = [
    pytest.param(b"{", "batch", id="truncated-json"),
    pytest.param(b"\xff\xfe\x00", "batch", id="not-utf8"),
    pytest.param(b"[]", "batch", id="not-object"),
    pytest.param(b'{"records": []}', "batch.thing_name", id="no-thing"),
    pytest.param(b'{"thing_name": "a/b", "records": []}', "thing_name", id="thing-with-slash"),
    pytest.param(b'{"thing_name": "+", "records": []}', "thing_name", id="thing-wildcard"),
    pytest.param(b'{"thing_name": "edge-dev-1"}', "batch.records", id="no-records"),
    pytest.param(b'{"thing_name": "edge-dev-1", "records": [3]}', "batch.records[]", id="record-not-object"),
    pytest.param(_batch(seq=0), "batch.records[].seq", id="seq-zero"),
    pytest.param(_batch(seq=-5), "batch.records[].seq", id="seq-negative"),
    pytest.param(_batch(seq=True), "batch.records[].seq", id="seq-bool"),
    pytest.param(_batch(seq="1"), "batch.records[].seq", id="seq-string"),
    pytest.param(_batch(kind="debug"), "kind", id="unknown-kind"),
    pytest.param(_batch(kind=None), "kind", id="null-kind"),
    pytest.param(_batch(at=float("nan")), "batch.records[].at", id="at-nan"),
    pytest.param(_batch(at="now"), "batch.records[].at", id="at-string"),
    pytest.param(_batch(payload=[1]), "batch.records[].payload", id="payload-list"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_BATCHES)
def test_decode_refuses(payload: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_batch(payload)
    assert info.value.field == field


def _varied(make_record: MakeRecord, count: int, thing_name: str = THING) -> list[Record]:
    return [make_record(seq, thing_name=thing_name, blob="x" * (seq * 37 % 190)) for seq in range(1, count + 1)]


@pytest.mark.parametrize("thing_name", [THING, "t" * 128], ids=["short-thing", "128-char-thing"])
@pytest.mark.parametrize("max_bytes", [500, 1000, 4096])
def test_split_keeps_order_and_respects_the_limit(make_record: MakeRecord, thing_name: str, max_bytes: int) -> None:
    records = _varied(make_record, 60, thing_name)
    batches = split_by_size(records, max_bytes)
    assert [r for batch in batches for r in batch] == records
    assert all(batches)
    for batch in batches:
        assert len(encode_batch(thing_name, batch)) <= max_bytes
    for batch, following in itertools.pairwise(batches):
        assert len(encode_batch(thing_name, [*batch, following[0]])) >= max_bytes, "split earlier than needed"


def test_split_of_nothing_is_no_batches() -> None:
    assert split_by_size([], 1000) == []


def test_split_fits_a_small_stream_in_one_batch(make_record: MakeRecord) -> None:
    records = _varied(make_record, 5)
    assert split_by_size(records) == [records]


def test_split_accepts_a_generator(make_record: MakeRecord) -> None:
    records = _varied(make_record, 20)
    assert [r for b in split_by_size(iter(records), 500) for r in b] == records


def test_split_refuses_a_single_oversized_record(make_record: MakeRecord) -> None:
    records = [make_record(1), make_record(2, blob="x" * 2000), make_record(3)]
    with pytest.raises(ValidationError) as info:
        split_by_size(records, 1000)
    assert info.value.field == "record"
    assert "seq 2" in info.value.message


def test_default_limit_is_below_the_iot_core_payload_limit() -> None:
    assert MAX_MESSAGE_BYTES < 128 * 1024


def _results(**changes: Any) -> InferenceBatch:
    fields: dict[str, Any] = {
        "request_ids": ("req-1", "req-2"),
        "label_indices": (0, 2),
        "labels": ("setosa", "virginica"),
        "confidences": (0.987654, 0.5),
        "model_version": 3,
        "latency_ms": 0.123456,
    }
    return InferenceBatch(**{**fields, **changes})


def test_inference_batch_payload_is_columnar_and_round_trips() -> None:
    payload = _results().to_payload()

    assert payload == {
        "model_version": 3,
        "latency_ms": 0.1235,
        "request_ids": ["req-1", "req-2"],
        "label_indices": [0, 2],
        "labels": ["setosa", "virginica"],
        "confidences": [0.987654, 0.5],
    }
    assert InferenceBatch.from_payload(json.loads(json.dumps(payload))) == _results(latency_ms=0.1235)


def test_inference_batch_rows_are_one_result_per_request() -> None:
    assert _results().rows() == [
        InferenceResult("req-1", "setosa", 0, 0.987654, 3, 0.123456),
        InferenceResult("req-2", "virginica", 2, 0.5, 3, 0.123456),
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"label_indices": [0, -1]}, "results.label_indices"),
        ({"label_indices": [0, True]}, "results.label_indices"),
        ({"label_indices": [0]}, "results"),
        ({"confidences": [0.5, "high"]}, "results.confidences"),
        ({"labels": ["setosa", ""]}, "results.labels"),
        ({"labels": ["setosa", "other"], "label_indices": [0, 0]}, "results.labels"),
        ({"request_ids": ["req-1", ""]}, "results.request_ids"),
        ({"request_ids": [], "label_indices": [], "labels": [], "confidences": []}, "results.request_ids"),
        ({"model_version": 0}, "results.model_version"),
        ({"latency_ms": None}, "results.latency_ms"),
        ({"extra": 1}, "results"),
    ],
    ids=[
        "negative-index",
        "bool-index",
        "short-column",
        "text-confidence",
        "empty-label",
        "one-index-two-names",
        "empty-request-id",
        "no-results",
        "model-version",
        "latency",
        "unknown-key",
    ],
)
def test_inference_batch_payload_refuses(changes: dict[str, Any], field: str) -> None:
    payload = {**_results().to_payload(), **changes}
    with pytest.raises(ValidationError) as info:
        InferenceBatch.from_payload(payload)
    assert info.value.field == field


def test_two_indices_may_share_a_name_but_one_index_has_one_name() -> None:
    payload = {**_results().to_payload(), "labels": ["same", "same"]}
    assert InferenceBatch.from_payload(payload).labels == ("same", "same")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_inference_batch_refuses_a_non_finite_confidence(bad: float) -> None:
    with pytest.raises(ValidationError) as info:
        _results(confidences=(0.5, bad))
    assert info.value.field == "results.confidences"


def test_inference_batch_holds_at_most_max_results_per_record() -> None:
    n = MAX_RESULTS_PER_RECORD + 1
    with pytest.raises(ValidationError, match=f"1-{MAX_RESULTS_PER_RECORD} results"):
        _results(request_ids=("r",) * n, label_indices=(0,) * n, labels=("a",) * n, confidences=(0.5,) * n)


def test_a_full_result_record_with_worst_case_ids_fits_one_message() -> None:
    n = MAX_RESULTS_PER_RECORD
    ids = tuple(f"{i:03d}" + "\U0001f600" * (MAX_REQUEST_ID_CHARS - 3) for i in range(n))
    batch = InferenceBatch(ids, (1_000_000,) * n, ("x" * 200,) * n, (0.12345678901234566,) * n, 2**31, 1e9)
    record = Record(THING, 2**53, RecordKind.RESULT, 1.7e9, batch.to_payload())

    assert len(encode_batch(THING, [record])) < MAX_MESSAGE_BYTES
