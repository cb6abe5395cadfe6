"""A real broker stopped and restarted mid-drain: nothing lost, order kept per class, duplicates only redelivery."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import decode_message

from edgeloop.core.backoff import UplinkState
from edgeloop.core.names import RESULTS_TOPIC_FILTER, SAMPLES_TOPIC_FILTER
from edgeloop.core.records import RecordKind
from edgeloop.device.forwarder import Forwarder
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.uplink import ConnectionWatch, MqttUplink, connect_mqtt
from edgeloop.local.broker import LocalIotCore, Rule, free_port

THING = "dev-restart"
WAIT_S = 30.0
DRAIN_LIMIT = 20
"""Small rounds, so the drain spans well over a hundred publishes and the restart lands inside it."""
MIX = ((RecordKind.RESULT, 5), (RecordKind.SAMPLE, 2), (RecordKind.EVENT, 2), (RecordKind.ALERT, 1))
ROUNDS = 300
"""300 rounds of the mix: 3,000 records, interleaved so every class has seqs spread over the whole range."""


class Arrivals:
    """The results rule's view: every (kind, seq) in the order IoT Core accepted it."""

    def __init__(self) -> None:
        self.seen: list[tuple[RecordKind, int]] = []
        self._changed = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._changed:
            self.seen.extend((r.kind, r.seq) for r in decode_message(topic, payload))
            self._changed.notify_all()

    def wait_for(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(set(self.seen)) >= count, WAIT_S)


def start_broker(port: int, arrivals: Arrivals) -> LocalIotCore:
    core = LocalIotCore(port=port)
    core.add_rule(Rule("results", RESULTS_TOPIC_FILTER, arrivals))
    core.add_rule(Rule("samples", SAMPLES_TOPIC_FILTER, arrivals))
    core.start()
    return core


class Drainer:
    """The device side: a forwarder driven by the wall clock in its own thread, watched from outside."""

    def __init__(self, forwarder: Forwarder, buffer: SqliteBuffer) -> None:
        self.forwarder = forwarder
        self.buffer = buffer
        self.states: set[UplinkState] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="drainer")

    def _run(self) -> None:
        while not self.stop.is_set() and self.buffer.stats().depth:
            now = time.monotonic()
            self.forwarder.drain(now, DRAIN_LIMIT)
            self.states.add(self.forwarder.state)
            wait = self.forwarder.next_drain_at(now, idle_s=0.02) - time.monotonic()
            self.stop.wait(max(0.0, min(wait, 0.02)))


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[SqliteBuffer]:
    made = SqliteBuffer(tmp_path / "buffer.sqlite3", THING)
    for _ in range(ROUNDS):
        for kind, count in MIX:
            made.append(kind, [{"reading": i, "pad": "x" * 60} for i in range(count)], now=1.0)
    yield made
    made.close()


def test_broker_restart_mid_drain_loses_nothing_and_keeps_class_order(buffer: SqliteBuffer) -> None:
    expected = {(r.kind, r.seq) for r in buffer.peek(1_000_000)}
    arrivals = Arrivals()
    port = free_port()
    running = start_broker(port, arrivals)
    watch = ConnectionWatch()
    uplink = MqttUplink(connect_mqtt(running.host, port, THING, watch=watch), 2.0, watch=watch)
    forwarder = Forwarder(THING, buffer, uplink, backoff_base_s=0.05, backoff_cap_s=0.5)
    drainer = Drainer(forwarder, buffer)
    try:
        drainer.thread.start()
        assert arrivals.wait_for(400), "the drain never got going"

        running.stop()  # mid-drain: the forwarder is publishing as fast as the rate limit allows
        assert watch.wait_for(False, WAIT_S), "the uplink never noticed the broker went away"
        assert not uplink.connected
        depth_while_down = buffer.stats().depth
        running = start_broker(port, arrivals)
        assert watch.wait_for(True, WAIT_S), "awscrt never reconnected"
        assert uplink.connected

        assert arrivals.wait_for(len(expected)), f"missing {len(expected - set(arrivals.seen))} records"
        drainer.thread.join(WAIT_S)
        assert not drainer.thread.is_alive()
        stats = forwarder.stats()  # before close() takes the link down on purpose
    finally:
        drainer.stop.set()
        drainer.thread.join(WAIT_S)
        uplink.close()
        running.stop()

    assert 0 < depth_while_down < len(expected)  # the restart really happened mid-drain
    assert set(arrivals.seen) == expected  # nothing lost
    for kind in RecordKind:
        first_seen = list(dict.fromkeys(seq for k, seq in arrivals.seen if k is kind))
        assert first_seen == sorted(first_seen), f"{kind.name} arrived out of order"
    duplicates = sum(n - 1 for n in Counter(arrivals.seen).values())
    assert stats.failures >= 1
    assert duplicates <= stats.failures * DRAIN_LIMIT, f"{duplicates} duplicates, more than redelivery explains"
    assert UplinkState.OFFLINE in drainer.states  # the forwarder saw the outage as such
    assert stats.state is UplinkState.CONNECTED
    assert buffer.stats().depth == 0
