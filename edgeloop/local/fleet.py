"""The stepped fleet: hundreds of simulated core devices in one process, each running the real device runtime,
advanced together on the scenario's virtual clock.

Simulation stand-in for a fleet, not a fleet. Each device keeps what a real one has of its own: a durable
SQLite buffer on disk, its model store, its nucleus (the Greengrass stand-in installs its deployments), its
configuration, drift window, samplers and health reports. What the process shares is what would only
measure the host: one onnxruntime session per verified model version (edgeloop.device.onnx_model.SessionPool),
no threads (a step is a call), and links into the local IoT Core without sockets (edgeloop.local.link).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgeloop.cloud.artifacts import DEFAULT_MAX_BYTES, ArtifactStore
from edgeloop.core.health import HealthReport
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.component import BUFFER_FILE, model_root
from edgeloop.device.model_manager import STORE_FOLDER
from edgeloop.device.onnx_session import SessionPool
from edgeloop.device.runtime import DeviceRuntime, InferenceRequest
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.local.devices import apply_deployment
from edgeloop.local.greengrass import LocalNucleus
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
    """One simulated core device driven by calls: serve this step's requests, commit, forward and report if due."""

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
        work = root / "work" / INFERENCE_COMPONENT
        work.mkdir(parents=True, exist_ok=True)
        self._buffer = SqliteBuffer(work / BUFFER_FILE, thing_name, synchronous=BUFFER_SYNCHRONOUS)
        self.link = SimulatedLink(index, network, deliver)
        self.runtime = DeviceRuntime(
            thing_name=thing_name,
            buffer=self._buffer,
            uplink=self.link,
            clock=clock,
            model_root=model_root(root),
            config=DeviceConfig(),
            store_dir=work / STORE_FOLDER,
            rng=np.random.default_rng(seed),
            session_pool=pool,
            forward_interval_s=forward_interval_s,
        )
        self.runtime.defer_forward(clock() + forward_phase_s)
        self.nucleus = LocalNucleus(thing_name, root, artifacts=artifacts, on_configuration=self._configure)
        self.nucleus.online = lambda: self.link.connected
        self.submitted = 0
        self._closed = False

    def _configure(self, config: DeviceConfig) -> None:
        apply_deployment(self.runtime, config)

    def step(self, requests: Sequence[InferenceRequest]) -> None:
        """One step of the component loop: answer the step's requests, commit them, then the periodic duties."""
        self.submitted += len(requests)
        if requests:
            self.runtime.serve(requests)
        self.runtime.commit()
        self.runtime.tick()

    def health(self) -> HealthReport:
        """The runtime's current health, read in-process (the cloud reads the shadow instead)."""
        return self.runtime.health()

    def buffer_depth(self) -> int:
        """Records waiting in this device's buffer."""
        return self._buffer.stats().depth

    def records_produced(self) -> int:
        """Records this device's buffer ever took."""
        return self._buffer.stats().produced

    def settled(self) -> bool:
        """Every record delivered (the requests were answered within their step)."""
        return self.buffer_depth() == 0

    def close(self) -> None:
        """Release the buffer; idempotent."""
        if not self._closed:
            self._closed = True
            self._buffer.close()
