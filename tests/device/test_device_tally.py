"""The tally: counters since start and per-inference latency and confidence windows."""

from __future__ import annotations

import threading

from edgeloop.device.tally import Tally


def test_served_counts_one_inference_per_confidence_with_the_batch_latency() -> None:
    tally = Tally()
    tally.served(2.5, [0.9, 0.8, 0.7])
    tally.served(1.0, [0.6])
    tally.count(rejected_inputs=2, errors=1)

    snapshot = tally.snapshot()

    assert (snapshot.inferences, snapshot.rejected_inputs, snapshot.errors) == (4, 2, 1)
    assert snapshot.latencies == [2.5, 2.5, 2.5, 1.0]
    assert snapshot.confidences == [0.9, 0.8, 0.7, 0.6]


def test_the_windows_are_bounded_but_the_counters_are_not() -> None:
    tally = Tally(window=3)
    tally.served(1.0, [0.1, 0.2])
    tally.served(2.0, [0.3, 0.4])

    snapshot = tally.snapshot()

    assert snapshot.inferences == 4
    assert snapshot.latencies == [1.0, 2.0, 2.0]
    assert snapshot.confidences == [0.2, 0.3, 0.4]


def test_forget_drops_only_what_a_report_covered() -> None:
    tally = Tally()
    tally.served(1.0, [0.1, 0.2])
    tally.served(2.0, [0.3])

    tally.forget(2)

    snapshot = tally.snapshot()
    assert (snapshot.latencies, snapshot.confidences, snapshot.inferences) == ([2.0], [0.3], 3)
    tally.forget(10)
    assert tally.snapshot().latencies == []


def test_a_snapshot_is_a_copy() -> None:
    tally = Tally()
    tally.served(1.0, [0.5])
    snapshot = tally.snapshot()
    tally.served(1.0, [0.5])
    assert snapshot.latencies == [1.0]


def test_threads_counting_at_once_lose_nothing() -> None:
    tally = Tally(window=100_000)

    def work() -> None:
        for _ in range(2000):
            tally.served(1.0, [0.5, 0.5])
            tally.count(rejected_inputs=1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    snapshot = tally.snapshot()
    assert (snapshot.inferences, snapshot.rejected_inputs, len(snapshot.latencies)) == (16_000, 8_000, 16_000)
