"""Records and batches: lossless encoding, strict decoding, and size-bounded ordered splitting."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.records import (
    MAX_MESSAGE_BYTES,
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


def test_inference_result_payload_round_trip() -> None:
    result = InferenceResult("req-1", "setosa", 0, 0.9876541, 3, 0.123456)
    payload = result.to_payload()
    assert payload["confidence"] == 0.987654
    assert payload["latency_ms"] == 0.1235
    assert InferenceResult.from_payload(payload) == InferenceResult("req-1", "setosa", 0, 0.987654, 3, 0.1235)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"label_index": -1}, "result.label_index"),
        ({"model_version": 0}, "result.model_version"),
        ({"confidence": "high"}, "result.confidence"),
        ({"request_id": ""}, "result.request_id"),
    ],
    ids=["label-index", "model-version", "confidence", "request-id"],
)
def test_inference_result_refuses(changes: dict[str, Any], field: str) -> None:
    payload = {**InferenceResult("req-1", "setosa", 0, 0.9, 3, 0.5).to_payload(), **changes}
    with pytest.raises(ValidationError) as info:
        InferenceResult.from_payload(payload)
    assert info.value.field == field
