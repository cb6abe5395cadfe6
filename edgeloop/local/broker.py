"""IoT Core stand-in: an embedded amqtt broker plus IoT Core's reserved topics and topic rules.

Simulation stand-in, not IoT Core: plain TCP without TLS or policies. What it keeps faithful is what
the device code depends on: QoS 1 acknowledgement on acceptance, `$aws/things/...` shadow topics
handled by a shadow service (amqtt alone refuses `$` topics and drops the client), and rules that see
every message published on a matching topic.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker

from edgeloop.core.errors import EdgeloopError
from edgeloop.core.names import topic_matches

log = logging.getLogger(__name__)

RESERVED_PREFIX = "$aws/"
Action = Callable[[str, bytes], None]
"""A rule action or reserved-topic service: (topic, payload) -> None; runs off the broker's loop."""
Publish = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Rule:
    """A topic rule: every message on a topic matching `topic_filter` goes to `action`."""

    name: str
    topic_filter: str
    action: Action


class _RoutingBroker(Broker):  # type: ignore[misc]
    """amqtt's broker with IoT Core's routing: reserved topics to services, every message past the rules."""

    def __init__(self, config: dict[str, Any], loop: asyncio.AbstractEventLoop, stand_in: LocalIotCore) -> None:
        super().__init__(config, loop=loop)
        self._stand_in = stand_in

    async def _handle_message_delivery(self, client_session: Any, handler: Any, wait_deliver: Any) -> bool:
        message = wait_deliver.result()
        if message is not None and message.topic:
            self._stand_in._dispatch(message.topic, bytes(message.data))
            if message.topic.startswith(RESERVED_PREFIX):
                return True  # consumed by the shadow service, as IoT Core does
        result: bool = await super()._handle_message_delivery(client_session, handler, wait_deliver)
        return result


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now on host (the broker binds it immediately after)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class LocalIotCore:
    """Runs the broker on its own event loop thread; rules and services run in one ordered worker."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, inline: bool = False) -> None:
        """inline runs rules and services in the publisher's thread (the stepped fleet simulation, see deliver)."""
        self.inline = inline
        self.host = host
        self.port = port or free_port(host)
        self._rules: list[Rule] = []
        self._services: list[tuple[str, Action]] = []
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="iot-rules")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="iot-broker", daemon=True)
        self._broker: _RoutingBroker | None = None
        self.rule_failures = 0

    def add_rule(self, rule: Rule) -> None:
        """Register a topic rule (IoT Core's rules engine: SELECT * FROM 'filter')."""
        self._rules.append(rule)

    def add_reserved_service(self, topic_filter: str, service: Action) -> None:
        """Handle a reserved `$aws/...` topic filter (the shadow service registers here)."""
        if not topic_filter.startswith(RESERVED_PREFIX):
            raise EdgeloopError(f"{topic_filter!r} is not a reserved topic filter")
        self._services.append((topic_filter, service))

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish from the cloud side (e.g. shadow accepted/rejected/documents) to subscribers and matching rules."""
        for rule in self._rules:
            if topic_matches(rule.topic_filter, topic):
                self._submit(f"rule {rule.name}", rule.action, topic, payload)
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.internal_message_broadcast(topic, payload, 1), self._loop)

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._thread.start()

        async def boot() -> _RoutingBroker:
            broker = _RoutingBroker(config, self._loop, self)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=15)
        log.info("local IoT Core stand-in listening on %s:%s", self.host, self.port)

    def stop(self) -> None:
        """Stop the broker, then let queued rule actions finish."""
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=15)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        self._worker.shutdown(wait=True)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every rule action queued so far has run."""
        self._worker.submit(lambda: None).result(timeout=timeout)

    def deliver(self, topic: str, payload: bytes) -> None:
        """A device's publish accepted by IoT Core without a socket: services and rules see it, as from the broker.

        The stepped fleet simulation's links (edgeloop.local.link) publish here; with inline=True every rule,
        and what it publishes in turn, has run when this returns.
        """
        self._dispatch(topic, payload)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        for topic_filter, service in self._services:
            if topic_matches(topic_filter, topic):
                self._submit(f"service {topic_filter}", service, topic, payload)
        for rule in self._rules:
            if topic_matches(rule.topic_filter, topic):
                self._submit(f"rule {rule.name}", rule.action, topic, payload)

    def _submit(self, what: str, action: Action, topic: str, payload: bytes) -> None:
        if self.inline:
            self._run(what, action, topic, payload)
        else:
            self._worker.submit(self._run, what, action, topic, payload)

    def _run(self, what: str, action: Action, topic: str, payload: bytes) -> None:
        try:
            action(topic, payload)
        except Exception:  # a failing action must not stop the rules engine, as in IoT Core
            self.rule_failures += 1
            log.exception("%s failed on %s", what, topic)

    def __enter__(self) -> LocalIotCore:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
