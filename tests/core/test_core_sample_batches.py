"""SAMPLE batches on the wire: packed by compressed size, named by seq range, and checked against their key."""

from __future__ import annotations

import random

import pytest

from edgeloop.core.compression import MAX_DECOMPRESSED_BYTES, compress, decompress
from edgeloop.core.errors import ValidationError
from edgeloop.core.names import parse_samples_topic, samples_object_key
from edgeloop.core.records import (
    BILLING_UNIT_BYTES,
    MAX_MESSAGE_BYTES,
    Packing,
    Record,
    RecordKind,
    billed_units,
    decode_batch,
    encode_batch,
)
from edgeloop.core.sample_batches import compressed_size, decode_samples_object, encode_samples_message, pack_samples

THING = "edge-dev-1"


def samples(count: int, *, start: int = 1, step: int = 1, seed: int = 3) -> list[Record]:
    """Sample-shaped records: 64 features with six noisy decimals (Laplace-filtered values compress least)."""
    rng = random.Random(seed)
    return [
        Record(THING, seq, RecordKind.SAMPLE, 1.0, {
            "request_id": f"{THING}-s{seq:07d}", "sampler": "low_confidence", "confidence": round(rng.random(), 6),
            "features": {f"pixel_{i}": round(rng.uniform(0, 16), 6) for i in range(64)},
        })
        for seq in range(start, start + count * step, step)
    ]  # fmt: skip


def wire_sizes(packing: Packing) -> list[int]:
    return [compressed_size(THING, m) for m in packing.messages]


def test_encode_names_the_range_and_compresses_the_batch_json() -> None:
    batch = samples(5, start=10, step=3)
    topic, payload = encode_samples_message(THING, batch)
    assert parse_samples_topic(topic) == (THING, 10, 22)
    assert decompress(payload) == encode_batch(THING, batch)
    assert (topic, payload) == encode_samples_message(THING, batch), "deterministic: a retry is the same message"


@pytest.mark.parametrize(
    ("batch", "needle"),
    [([], "at least one record"), ([Record(THING, 1, RecordKind.RESULT, 1.0, {})], "SAMPLE records only")],
    ids=["empty", "not-samples"],
)
def test_encode_refuses_what_is_not_a_samples_batch(batch: list[Record], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        encode_samples_message(THING, batch)


def test_decode_reads_back_what_the_rule_stored() -> None:
    batch = samples(4, start=7, step=5)
    topic, payload = encode_samples_message(THING, batch)
    assert decode_samples_object(samples_object_key(topic), payload) == (THING, tuple(batch))


@pytest.mark.parametrize(
    ("key", "records", "needle"),
    [
        ("samples/edge-dev-1/1-3.json.gz", [], "is empty"),
        ("samples/edge-dev-2/1-3.json.gz", samples(3), "in the object of 'edge-dev-2'"),
        ("samples/edge-dev-1/1-4.json.gz", samples(3), "seqs span 1-3, the key names 1-4"),
        ("samples/edge-dev-1/2-3.json.gz", samples(3), "seqs span 1-3, the key names 2-3"),
        ("samples/edge-dev-1/1-3.json.gz", [*samples(3), *samples(1, start=2)], "a seq appears twice"),
        ("samples/edge-dev-1/1-1.json.gz", [Record(THING, 1, RecordKind.EVENT, 1.0, {})], "is event, not sample"),
    ],
    ids=["empty", "another-thing", "range-wider", "range-narrower", "repeated-seq", "not-samples"],
)
def test_decode_refuses_a_batch_that_disagrees_with_its_key(key: str, records: list[Record], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_samples_object(key, compress(encode_batch(THING, records)))
    assert needle in str(info.value)


def test_packing_fills_whole_units_of_compressed_bytes_in_order() -> None:
    records = samples(600)
    packing = pack_samples(records, more_waiting=False)

    capacity = MAX_MESSAGE_BYTES // BILLING_UNIT_BYTES * BILLING_UNIT_BYTES
    assert [r for m in packing.messages for r in m] == records
    assert (packing.oversized, packing.held_back) == ((), 0)
    assert len(packing.messages) > 1
    assert max(wire_sizes(packing)) <= capacity
    for message, following in zip(packing.messages, packing.messages[1:], strict=False):
        assert compressed_size(THING, [*message, following[0]]) > capacity, "each message is as full as it goes"
    raw = sum(len(encode_batch(THING, m)) for m in packing.messages)
    assert raw / sum(wire_sizes(packing)) > 2, "noisy six-decimal features still compress more than twofold"


def test_packing_keeps_the_json_within_what_the_cloud_inflates() -> None:
    records = [Record(THING, s, RecordKind.SAMPLE, 1.0, {"blob": "y" * 20_000}) for s in range(1, 120)]
    packing = pack_samples(records, more_waiting=False, max_json_bytes=200_000)
    assert [r for m in packing.messages for r in m] == records
    assert max(len(encode_batch(THING, m)) for m in packing.messages) <= 200_000
    assert max(wire_sizes(packing)) < BILLING_UNIT_BYTES, "the JSON bound binds before the wire does"


def test_a_partial_last_message_is_trimmed_to_a_unit_when_more_wait() -> None:
    records = samples(40)
    whole = pack_samples(records, more_waiting=False)
    trimmed = pack_samples(records, more_waiting=True)
    [message] = whole.messages
    assert billed_units(compressed_size(THING, message)) >= 2, "the case needs a message over one unit"

    [kept] = trimmed.messages
    boundary = compressed_size(THING, message) // BILLING_UNIT_BYTES * BILLING_UNIT_BYTES
    assert compressed_size(THING, kept) <= boundary < compressed_size(THING, [*kept, records[len(kept)]])
    assert trimmed.held_back == len(records) - len(kept) > 0
    assert list(kept) == records[: len(kept)]


def test_a_lone_message_under_one_unit_still_goes() -> None:
    packing = pack_samples(samples(2), more_waiting=True)
    assert packing.messages == (tuple(samples(2)),)
    assert packing.held_back == 0


def test_a_record_no_message_can_carry_is_returned_apart() -> None:
    rng = random.Random(5)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(2 * MAX_MESSAGE_BYTES))
    records = [
        *samples(2),
        Record(THING, 3, RecordKind.SAMPLE, 1.0, {"blob": noise}),  # compressed still over the message limit
        Record(THING, 4, RecordKind.SAMPLE, 1.0, {"blob": "y" * MAX_DECOMPRESSED_BYTES}),  # JSON over the bound
        *samples(2, start=5),
    ]
    packing = pack_samples(records, more_waiting=False)
    assert [r.seq for r in packing.oversized] == [3, 4]
    assert [r.seq for m in packing.messages for r in m] == [1, 2, 5, 6]


def test_packing_refuses_nonsense_limits() -> None:
    with pytest.raises(ValidationError):
        pack_samples(samples(1), more_waiting=False, max_bytes=0)


def test_what_crosses_the_wire_decodes_to_the_same_records() -> None:
    packing = pack_samples(samples(300), more_waiting=False)
    for message in packing.messages:
        topic, payload = encode_samples_message(THING, message)
        assert topic == f"edgeloop/things/{THING}/samples/{message[0].seq}-{message[-1].seq}"
        assert decode_batch(decompress(payload)) == message
        assert len(payload) <= MAX_MESSAGE_BYTES


def test_trimming_after_a_refused_record_still_trims_the_right_message() -> None:
    records = [*samples(40), Record(THING, 99, RecordKind.SAMPLE, 1.0, {"blob": "y" * MAX_DECOMPRESSED_BYTES})]
    packing = pack_samples(records, more_waiting=True)
    assert [r.seq for r in packing.oversized] == [99]
    [kept] = packing.messages
    assert list(kept) == records[: len(kept)]
    assert packing.held_back == 40 - len(kept) > 0
    assert compressed_size(THING, kept) % BILLING_UNIT_BYTES > BILLING_UNIT_BYTES * 0.8, "ends near a unit boundary"


def test_few_compressions_a_message_however_long_the_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeloop.core import sample_batches

    calls: list[int] = []
    real = sample_batches.compressed_size
    monkeypatch.setattr(sample_batches, "compressed_size", lambda t, r: calls.append(len(r)) or real(t, r))
    packing = pack_samples(samples(1_000), more_waiting=False)
    assert len(calls) <= 4 * len(packing.messages)
    assert max(calls) < 2 * max(len(m) for m in packing.messages), "never the whole backlog at once"
