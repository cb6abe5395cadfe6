"""The runtime's request queue: bounded, a non-blocking put for IPC handlers and a batch take for the loop."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from edgeloop.device.inference import InferenceRequest
from edgeloop.device.request_queue import RequestQueue


def request(i: int) -> InferenceRequest:
    return (f"r{i}", [float(i)])


def test_take_moves_what_is_waiting_in_order_and_wakes_blocked_producers() -> None:
    inputs = RequestQueue(maxsize=3)
    for i in range(3):
        inputs.put(request(i))
    unblocked = threading.Event()

    def producer() -> None:
        inputs.put(request(3))  # blocks until take frees a slot
        unblocked.set()

    thread = threading.Thread(target=producer)
    thread.start()
    thread.join(0.2)  # give the producer time to block on the full queue, so the wake-up is what frees it
    assert not unblocked.is_set()
    taken: list[InferenceRequest] = []
    assert inputs.take(taken, limit=2) == 2
    assert [request_id for request_id, _ in taken] == ["r0", "r1"]
    assert unblocked.wait(5)
    thread.join(5)
    assert inputs.take(taken, limit=10) == 2
    assert [request_id for request_id, _ in taken] == ["r0", "r1", "r2", "r3"]
    assert inputs.take(taken, limit=10) == 0


def test_put_nowait_on_a_full_queue_raises_full_and_keeps_what_was_queued() -> None:
    inputs = RequestQueue(maxsize=2)
    inputs.put_nowait(request(0))
    inputs.put_nowait(request(1))

    with pytest.raises(queue.Full):
        inputs.put_nowait(request(2))

    assert [rid for rid, _ in inputs.drain()] == ["r0", "r1"]
    assert inputs.qsize() == 0


def test_an_unbounded_queue_takes_any_number() -> None:
    inputs = RequestQueue()
    for i in range(1000):
        inputs.put_nowait(request(i))
    assert inputs.qsize() == 1000


def test_put_with_a_timeout_gives_up_with_full() -> None:
    inputs = RequestQueue(maxsize=1)
    inputs.put(request(0))
    started = time.monotonic()

    with pytest.raises(queue.Full):
        inputs.put(request(1), timeout=0.05)

    assert time.monotonic() - started >= 0.04
    assert inputs.qsize() == 1


def test_get_waits_up_to_its_timeout_then_raises_empty() -> None:
    inputs = RequestQueue()
    started = time.monotonic()

    with pytest.raises(queue.Empty):
        inputs.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        inputs.get_nowait()

    assert time.monotonic() - started >= 0.04


def test_get_returns_a_request_put_by_another_thread_while_it_waits() -> None:
    inputs = RequestQueue()
    timer = threading.Timer(0.05, inputs.put, args=(request(7),))
    timer.start()

    assert inputs.get(timeout=5) == request(7)
    timer.join()


def test_put_many_queues_all_at_once_or_none_when_they_do_not_fit() -> None:
    inputs = RequestQueue(maxsize=3)
    assert inputs.put_many([request(0), request(1)]) == 2

    with pytest.raises(queue.Full):
        inputs.put_many([request(2), request(3)])

    assert [rid for rid, _ in inputs.drain()] == ["r0", "r1"]


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="maxsize must be >= 0, got -1"):
        RequestQueue(maxsize=-1)


def test_empty_and_qsize_say_what_waits() -> None:
    inputs = RequestQueue()
    assert inputs.empty()
    inputs.put(request(0))
    assert (inputs.empty(), inputs.qsize()) == (False, 1)
