"""Packing records into IoT Core messages: ordered, under the payload limit, filling whole billing units."""

from __future__ import annotations

import math

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.core.records import (
    BILLING_UNIT_BYTES,
    IOT_CORE_MAX_PAYLOAD_BYTES,
    MAX_MESSAGE_BYTES,
    Packing,
    Record,
    RecordKind,
    batch_size,
    billed_units,
    encode_batch,
    pack_messages,
    record_cost,
    split_by_size,
)

THING = "edge-dev-1"


def records(count: int, *, blob: int = 300, start: int = 1, kind: RecordKind = RecordKind.RESULT) -> list[Record]:
    """Records whose sizes vary a little, as real ones do."""
    return [Record(THING, seq, kind, 1.0, {"blob": "x" * (blob + seq % 37)}) for seq in range(start, start + count)]


def sizes(packing: Packing) -> list[int]:
    return [len(encode_batch(THING, list(m))) for m in packing.messages]


def test_limits_are_iot_cores() -> None:
    assert (BILLING_UNIT_BYTES, IOT_CORE_MAX_PAYLOAD_BYTES) == (5120, 131072)
    assert MAX_MESSAGE_BYTES < IOT_CORE_MAX_PAYLOAD_BYTES


@pytest.mark.parametrize(("size", "units"), [(0, 1), (1, 1), (5120, 1), (5121, 2), (10240, 2), (117760, 23)])
def test_billed_units(size: int, units: int) -> None:
    assert billed_units(size) == units


def test_batch_size_is_the_exact_encoded_size() -> None:
    for count in (0, 1, 2, 17):
        batch = records(count)
        assert batch_size(THING, [record_cost(r) for r in batch]) == len(encode_batch(THING, batch))


def test_messages_keep_the_order_and_every_record() -> None:
    mixed = records(50, kind=RecordKind.ALERT) + records(400, start=51, kind=RecordKind.RESULT)

    packing = pack_messages(mixed, more_waiting=False)

    assert [r for m in packing.messages for r in m] == mixed
    assert (packing.oversized, packing.held_back) == ((), 0)


def test_every_message_fits_whole_units_under_the_limit() -> None:
    packing = pack_messages(records(2_000), more_waiting=False)

    capacity = MAX_MESSAGE_BYTES // BILLING_UNIT_BYTES * BILLING_UNIT_BYTES
    assert len(packing.messages) > 3
    assert all(size <= capacity for size in sizes(packing))
    largest_record = max(record_cost(r) for r in records(2_000))
    assert all(size > capacity - largest_record for size in sizes(packing)[:-1])  # full but for one record


def test_packing_bills_no_more_units_than_splitting_by_size() -> None:
    stream = records(3_000)
    packed = sum(billed_units(s) for s in sizes(pack_messages(stream, more_waiting=False)))
    split = sum(billed_units(len(encode_batch(THING, b))) for b in split_by_size(stream))
    total = sum(record_cost(r) for r in stream)

    assert packed < split
    assert packed <= math.ceil(total / BILLING_UNIT_BYTES) + 1


def test_with_more_waiting_the_last_message_is_cut_back_to_a_unit_boundary() -> None:
    stream = records(60)  # about 20 KB: one message that ends part-way into a unit
    boundary = len(encode_batch(THING, stream)) // BILLING_UNIT_BYTES * BILLING_UNIT_BYTES

    packing = pack_messages(stream, more_waiting=True)

    ((message),) = packing.messages
    assert list(message) == stream[: len(message)]
    assert len(encode_batch(THING, list(message))) <= boundary
    assert len(encode_batch(THING, stream[: len(message) + 1])) > boundary  # as full as the boundary allows
    assert packing.held_back == len(stream) - len(message) > 0


def test_with_more_waiting_only_the_last_message_is_trimmed() -> None:
    stream = records(400)  # one full message and a partial one
    whole = pack_messages(stream, more_waiting=False)

    packing = pack_messages(stream, more_waiting=True)

    assert len(whole.messages) == len(packing.messages) == 2
    assert packing.messages[0] == whole.messages[0]
    assert whole.messages[1][: len(packing.messages[1])] == packing.messages[1]
    assert len(packing.messages[1]) + packing.held_back == len(whole.messages[1])


def test_with_more_waiting_a_trailing_message_under_one_unit_waits_for_the_next_round() -> None:
    first = pack_messages(records(400), more_waiting=False).messages[0]
    stream = [*first, *records(3, start=1_000)]  # a full message, then a few hundred bytes

    packing = pack_messages(stream, more_waiting=True)

    assert packing.messages == (first,)
    assert packing.held_back == 3


def test_a_lone_message_under_one_unit_still_goes() -> None:
    stream = records(3)

    packing = pack_messages(stream, more_waiting=True)

    assert packing.messages == (tuple(stream),)
    assert packing.held_back == 0


def test_an_oversized_record_is_set_aside_and_the_rest_still_goes() -> None:
    stream = records(3)
    huge = Record(THING, 99, RecordKind.EVENT, 1.0, {"blob": "y" * (MAX_MESSAGE_BYTES + 1)})

    packing = pack_messages([stream[0], huge, *stream[1:]], more_waiting=False)

    assert packing.oversized == (huge,)
    assert packing.messages == (tuple(stream),)


def test_a_record_between_the_unit_capacity_and_the_limit_travels_alone() -> None:
    capacity = MAX_MESSAGE_BYTES // BILLING_UNIT_BYTES * BILLING_UNIT_BYTES
    big = Record(THING, 5, RecordKind.SAMPLE, 1.0, {"blob": "z" * (capacity + 100)})
    stream = [*records(2), big, *records(2, start=10)]

    packing = pack_messages(stream, more_waiting=False)

    assert packing.messages == (tuple(stream[:2]), (big,), tuple(stream[3:]))
    assert all(size <= MAX_MESSAGE_BYTES for size in sizes(packing))


def test_nothing_in_nothing_out() -> None:
    assert pack_messages([], more_waiting=True) == Packing((), (), 0)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValidationError, match="max_bytes"):
        pack_messages(records(1), more_waiting=False, max_bytes=0)
