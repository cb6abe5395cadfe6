"""The uplink contract and a forwarder drain against Debian's mosquitto, a broker we did not write."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import decode_message

# The contract tests run here again, against the harness fixture defined below.
from test_device_uplink import (  # noqa: F401 - imported to be collected
    WAIT_S,
    Harness,
    Inbox,
    listen,
    test_connected_while_up,
    test_offline_calls_raise_link_error,
    test_publish_delivers_the_payload_to_the_topic,
    test_publishes_arrive_in_order,
    test_update_shadow_delivers_the_document_on_the_shadow_update_topic,
)

from edgeloop.core.names import NAMED_SHADOW_UPDATE_FILTER, RESULTS_TOPIC_FILTER, SAMPLES_TOPIC_FILTER, topic_matches
from edgeloop.core.records import RecordKind
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.forwarder import Forwarder
from edgeloop.device.uplink import ConnectionWatch, MqttUplink, connect_mqtt
from edgeloop.local.broker import free_port

MOSQUITTO = shutil.which("mosquitto") or next(
    (str(p) for p in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")) if p.exists()), None
)
pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto binary not found (apt-get install mosquitto); CI installs it"
)


class Mosquitto:
    """One mosquitto process on 127.0.0.1, anonymous plain TCP, no persistence, config in a temp dir."""

    def __init__(self, workdir: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        config = workdir / "mosquitto.conf"
        # As root, mosquitto drops to user mosquitto unless told otherwise; it then could not read a
        # private temp dir. `user root` keeps it as the caller (ignored when not started as root).
        config.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\nuser root\nlog_type error\n"
        )
        self.log = workdir / "mosquitto.log"
        with self.log.open("wb") as out:
            assert MOSQUITTO is not None
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=WAIT_S)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


class MosquittoHarness(Harness):
    """MqttUplink on mosquitto; a second client sees results and shadow updates ($aws topics are plain topics)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.watch = ConnectionWatch()
        connection = connect_mqtt(broker.host, broker.port, f"dev-{uuid.uuid4().hex[:8]}", watch=self.watch)
        self.mqtt = MqttUplink(connection, WAIT_S, watch=self.watch)
        self.uplink = self.mqtt
        self.subscriber, self.inbox = listen(broker, "edgeloop/#", NAMED_SHADOW_UPDATE_FILTER)

    def published(self, count: int) -> list[tuple[str, bytes]]:
        return [m for m in self.inbox.wait_for(count) if m[0].startswith("edgeloop/")]

    def shadow_documents(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        return [(t, json.loads(p)) for t, p in self.inbox.wait_for(count) if t.startswith("$aws/")]

    def go_offline(self) -> None:
        self.mqtt.close()
        assert self.watch.wait_for(False, WAIT_S)

    def close(self) -> None:
        self.mqtt.close()
        self.subscriber.disconnect().result(timeout=WAIT_S)


@pytest.fixture
def harness(mosquitto: Mosquitto) -> Iterator[Harness]:
    made = MosquittoHarness(mosquitto)
    yield made
    made.close()


def test_a_forwarder_drains_a_mixed_buffer_through_mosquitto_in_class_order(mosquitto: Mosquitto) -> None:
    thing = f"dev-{uuid.uuid4().hex[:8]}"
    buffer = MemoryBuffer(thing)
    for _ in range(50):
        for kind in (RecordKind.RESULT, RecordKind.ALERT, RecordKind.SAMPLE):
            buffer.append(kind, [{"pad": "x" * 200}] * 4, now=1.0)
    expected = [(r.kind, r.seq) for r in buffer.peek(10_000)]
    subscriber, inbox = listen(mosquitto, RESULTS_TOPIC_FILTER, SAMPLES_TOPIC_FILTER)
    uplink = MqttUplink.connect(mosquitto.host, mosquitto.port, thing, timeout_s=WAIT_S)
    forwarder = Forwarder(thing, buffer, uplink)
    try:
        now = 0.0
        while buffer.stats().depth:
            forwarder.drain(now, 100)
            now = forwarder.next_drain_at(now, idle_s=0.1)
        messages = inbox.wait_for(forwarder.stats().messages)
    finally:
        uplink.close()
        subscriber.disconnect().result(timeout=WAIT_S)

    assert [(r.kind, r.seq) for topic, payload in messages for r in decode_message(topic, payload)] == expected
    for topic, payload in messages:  # samples travel apart, compressed, to the labelling path; nothing else does
        kinds = {r.kind for r in decode_message(topic, payload)}
        assert topic_matches(SAMPLES_TOPIC_FILTER, topic) == (kinds == {RecordKind.SAMPLE}), (topic, kinds)
    assert forwarder.stats().failures == 0
