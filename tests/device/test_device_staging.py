"""Group commit: staged RESULT and SAMPLE records reach the buffer together, in one append per kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgeloop.core.errors import StoreError
from edgeloop.core.records import InferenceBatch, Record, RecordKind
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.staging import COMMIT_MAX_RESULTS, Staging
from edgeloop.device.stored_payload import ResultColumns
from edgeloop.device.tally import Tally

THING = "dev-1"


class CountingBuffer(MemoryBuffer):
    """Notes each append's kind and size; refuses RESULT appends while `refuse` is set."""

    def __init__(self) -> None:
        super().__init__(THING)
        self.appends: list[tuple[RecordKind, int]] = []
        self.refuse = False

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        if self.refuse and kind is RecordKind.RESULT:
            raise StoreError("buffer full")
        self.appends.append((kind, len(payloads)))
        return super().append(kind, payloads, now)


def columns(n: int, first: int = 0) -> ResultColumns:
    ids = [f"r{i}" for i in range(first, first + n)]
    return ids, [1] * n, ["one"] * n, [0.5] * n, 3, 1.25


def staging(buffer: MemoryBuffer, commit_ms: int, tally: Tally | None = None) -> Staging:
    return Staging(buffer, lambda: 1_000.0, tally or Tally(), lambda: commit_ms)


def test_results_wait_for_the_window_then_go_in_one_append() -> None:
    buffer = CountingBuffer()
    stage = staging(buffer, commit_ms=60_000)

    stage.stage([columns(3)])
    stage.stage([columns(2, first=3)])

    assert buffer.appends == []
    assert stage.holds_results
    assert stage.commit() == 2
    assert buffer.appends == [(RecordKind.RESULT, 2)]
    rows = [row for r in buffer.peek(10) for row in InferenceBatch.from_payload(r.payload).rows()]
    assert [row.request_id for row in rows] == [f"r{i}" for i in range(5)]
    assert (rows[0].model_version, rows[0].latency_ms, rows[0].label) == (3, 1.25, "one")
    assert not stage.holds_results
    assert stage.commit() == 0


def test_a_zero_window_commits_every_micro_batch() -> None:
    buffer = CountingBuffer()
    stage = staging(buffer, commit_ms=0)

    stage.stage([columns(1)])
    stage.stage([columns(1, first=1)])

    assert buffer.appends == [(RecordKind.RESULT, 1), (RecordKind.RESULT, 1)]


def test_enough_staged_results_commit_before_the_window_closes() -> None:
    buffer = CountingBuffer()
    stage = staging(buffer, commit_ms=60_000)

    stage.stage([columns(COMMIT_MAX_RESULTS - 1)])
    assert buffer.appends == []
    stage.stage([columns(1, first=COMMIT_MAX_RESULTS)])

    assert buffer.appends == [(RecordKind.RESULT, 2)]


def test_samples_share_the_results_commit_after_them() -> None:
    buffer = CountingBuffer()
    stage = staging(buffer, commit_ms=60_000)
    stage.stage([columns(2)])
    stage.stage_samples([{"request_id": "r0"}, {"request_id": "r1"}])

    assert stage.commit() == 1

    assert buffer.appends == [(RecordKind.RESULT, 1), (RecordKind.SAMPLE, 2)]


def test_a_refused_append_is_counted_as_an_error_and_the_samples_still_go() -> None:
    buffer, tally = CountingBuffer(), Tally()
    buffer.refuse = True
    stage = staging(buffer, commit_ms=60_000, tally=tally)
    stage.stage([columns(2)])
    stage.stage_samples([{"request_id": "r0"}])

    assert stage.commit() == 0

    assert tally.snapshot().errors == 1
    assert buffer.appends == [(RecordKind.SAMPLE, 1)]
