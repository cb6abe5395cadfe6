"""The stepped fleet: hundreds of simulated core devices in one process, each running the real inference
component (edgeloop.device.component) against its IPC stand-in, advanced together on the scenario's virtual clock.

Simulation stand-in for a fleet, not a fleet. Each device keeps what a real one has of its own: a durable
SQLite buffer on disk, its model store, its nucleus (the Greengrass stand-in installs its deployments), its
configuration, drift window, samplers and health reports. What the process shares is what would only
measure the host: one onnxruntime session per verified model version (edgeloop.device.onnx_model.SessionPool),
no threads (a step is a call), and links into the local IoT Core without sockets (edgeloop.local.link).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.cloud.artifacts import DEFAULT_MAX_BYTES, ArtifactStore
from edgeloop.core.health import HealthReport
from edgeloop.core.names import HEALTH_SHADOW, INPUTS_LOCAL_TOPIC
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.component import HostOptions, start
from edgeloop.device.onnx_session import SessionPool
from edgeloop.device.runtime import InferenceRequest
from edgeloop.local.devices import keep_host_log_level, refuse_rejected_model, request_message, work_dir
from edgeloop.local.greengrass import LocalNucleus
from edgeloop.local.ipc import LocalIpc
from edgeloop.local.link import Deliver, Network, SimulatedLink

BUFFER_SYNCHRONOUS = "NORMAL"
"""The fleet's buffers skip the fsync per commit: one process cannot simulate a thousand devices' disks, and
what the simulation checks (nothing lost across outages and retries) does not depend on power-cut safety;
tests/device and benchmarks/crash.py cover the devices' FULL mode."""


class FleetDownloads:
    """The fleet's artifact downloads, fetched from S3 once per run and handed to each nucleus as its own copy.

    Simulation shortcut: a thousand devices fetching the same objects would measure moto, not the fleet.
    Each nucleus still writes its copy and each runtime still verifies it (SHA-256, signature, self-test).
    """

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store
        self._cache: dict[str, bytes] = {}
        self.fetched = 0

    def put(self, uri: str, data: bytes) -> None:
        """Write through to the store (the cached copy, if any, is replaced)."""
        self._store.put(uri, data)
        self._cache[uri] = data

    def get(self, uri: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """The object's bytes, fetched on first use."""
        if uri not in self._cache:
            self._cache[uri] = self._store.get(uri, max_bytes=max_bytes)
            self.fetched += 1
        return self._cache[uri]


class SteppedDevice:
    """One simulated core device driven by calls: its component takes the step's requests from local pub/sub and
    serves them, then commits, forwards and reports if due.

    The component is the real one (edgeloop.device.component.start), against the device's IPC stand-in:
    deployments reach it validated-then-updated, requests as local pub/sub messages it parses, desired-state
    changes as shadow deltas. Its records and health go out through the simulated link (an Uplink), not IPC.
    """

    def __init__(
        self,
        thing_name: str,
        index: int,
        root: Path,
        *,
        network: Network,
        deliver: Deliver,
        artifacts: ArtifactStore,
        clock: Callable[[], float],
        pool: SessionPool,
        seed: int,
        forward_interval_s: float,
        forward_phase_s: float = 0.0,
    ) -> None:
        """forward_interval_s: how long an idle device waits between forward rounds (a backlog drains at once);
        forward_phase_s: when its first round may start, so a fleet's rounds do not all fall on one step."""
        self.thing_name = thing_name
        self.index = index
        self.link = SimulatedLink(index, network, deliver)
        self.nucleus = LocalNucleus(thing_name, root, artifacts=artifacts, on_configuration=self._check)
        self.nucleus.online = lambda: self.link.connected
        host = HostOptions(
            buffer_synchronous=BUFFER_SYNCHRONOUS,
            forward_interval_s=forward_interval_s,
            rng=np.random.default_rng(seed),
            session_pool=pool,
            set_log_level=keep_host_log_level,
        )
        self.component = start(
            self.nucleus.ipc, thing_name, root, work_dir(root), clock=clock, uplink=self.link, host=host
        )
        self.runtime = self.component.runtime
        self.runtime.defer_forward(clock() + forward_phase_s)
        self.submitted = 0
        self._closed = False

    @property
    def ipc(self) -> LocalIpc:
        """The component's IPC stand-in."""
        return self.nucleus.ipc

    def _check(self, config: DeviceConfig) -> None:
        refuse_rejected_model(self.runtime, config)

    def step(self, requests: Sequence[InferenceRequest]) -> None:
        """One step of the component loop: the step's requests arrive on local pub/sub, are served and committed,
        then the periodic duties run."""
        self.submitted += len(requests)
        for request_id, features in requests:
            self.ipc.publish(INPUTS_LOCAL_TOPIC, request_message(request_id, features))
        queued = self.component.take_inputs()
        if queued:
            self.runtime.serve(queued)
        self.runtime.commit()
        self.runtime.tick()

    def set_desired(self, desired: Mapping[str, Any]) -> None:
        """The cloud changed the health shadow's desired section: ShadowManager syncs it and publishes the delta."""
        self.ipc.update_desired(HEALTH_SHADOW, desired)

    def health(self) -> HealthReport:
        """The runtime's current health, read in-process (the cloud reads the shadow instead)."""
        return self.runtime.health()

    def buffer_depth(self) -> int:
        """Records waiting in this device's buffer."""
        return self.component.buffer.stats().depth

    def records_produced(self) -> int:
        """Records this device's buffer ever took."""
        return self.component.buffer.stats().produced

    def settled(self) -> bool:
        """Every record delivered (the requests were answered within their step)."""
        return self.buffer_depth() == 0

    def close(self) -> None:
        """Release the buffer and IPC; idempotent."""
        if not self._closed:
            self._closed = True
            self.ipc.close()
            self.component.close()
