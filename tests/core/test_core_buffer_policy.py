"""The buffer's eviction policy as a pure function: who makes room, and when an append is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from edgeloop.core.buffer_policy import (
    BUFFER_FULL,
    Victim,
    bytes_to_free,
    choose_victims,
    eviction_order,
    zero_counts,
)
from edgeloop.core.errors import StoreError
from edgeloop.core.records import RecordKind

A, E, S, R = RecordKind.ALERT, RecordKind.EVENT, RecordKind.SAMPLE, RecordKind.RESULT


def test_eviction_order_is_lowest_priority_first_and_never_above_the_incoming_class() -> None:
    assert eviction_order(A) == (R, S, E, A)
    assert eviction_order(E) == (R, S, E)
    assert eviction_order(S) == (R, S)
    assert eviction_order(R) == (R,)


def test_nothing_to_free_while_the_append_fits() -> None:
    assert bytes_to_free({A: 10, R: 10}, R, 80, max_bytes=100) == 0


def test_the_overflow_is_what_must_be_freed() -> None:
    assert bytes_to_free({A: 10, R: 50}, R, 60, max_bytes=100) == 20


def test_an_append_that_needs_more_than_its_class_and_below_may_evict_is_refused() -> None:
    with pytest.raises(StoreError, match=f"^{BUFFER_FULL}: 30 bytes of result .* only 10 bytes"):
        bytes_to_free({A: 80, R: 10}, R, 30, max_bytes=100)


def test_an_append_bigger_than_the_bound_is_refused_even_when_empty() -> None:
    with pytest.raises(StoreError, match=BUFFER_FULL):
        bytes_to_free({}, A, 101, max_bytes=100)


def test_a_bound_that_is_not_positive_is_refused() -> None:
    with pytest.raises(StoreError, match="max_bytes"):
        bytes_to_free({}, A, 1, max_bytes=0)


def _stored(**by_kind: list[Victim]) -> dict[RecordKind, list[Victim]]:
    return {RecordKind[name.upper()]: victims for name, victims in by_kind.items()}


def _reader(
    stored: dict[RecordKind, list[Victim]], reads: list[RecordKind]
) -> Callable[[RecordKind], Iterable[Victim]]:
    def oldest_of(kind: RecordKind) -> Iterable[Victim]:
        reads.append(kind)
        return iter(stored.get(kind, []))

    return oldest_of


def test_victims_are_the_oldest_of_the_lowest_class_first_until_enough_is_freed() -> None:
    stored = _stored(result=[(7, 10), (9, 10)], sample=[(3, 10), (5, 10)], alert=[(1, 10)])
    reads: list[RecordKind] = []

    victims = choose_victims(25, eviction_order(A), _reader(stored, reads))

    assert victims == {R: [(7, 10), (9, 10)], S: [(3, 10)]}
    assert reads == [R, S]  # the event and alert classes were never read


def test_no_victims_are_read_when_nothing_must_be_freed() -> None:
    reads: list[RecordKind] = []

    assert choose_victims(0, eviction_order(A), _reader({}, reads)) == {}
    assert reads == []


def test_sizes_out_of_step_with_the_store_are_an_error_not_a_partial_eviction() -> None:
    with pytest.raises(StoreError, match="out of step"):
        choose_victims(50, (R,), _reader(_stored(result=[(1, 10)]), []))


def test_counters_have_every_class() -> None:
    assert zero_counts() == {"alert": 0, "event": 0, "sample": 0, "result": 0}
