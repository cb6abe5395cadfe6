"""Simulated core devices: the real edgeloop.device runtime in a thread, reached through the stand-ins."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeloop.cloud.artifacts import ArtifactStore
from edgeloop.core.errors import ModelFormatError
from edgeloop.core.health import HealthReport, ModelState
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.component import BUFFER_FILE, model_root
from edgeloop.device.model_manager import STORE_FOLDER
from edgeloop.device.request_queue import RequestQueue
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.sqlite_buffer import SqliteBuffer
from edgeloop.device.uplink import MqttUplink
from edgeloop.local.greengrass import LocalNucleus

UPLINK_TIMEOUT_S = 10.0


def apply_deployment(runtime: DeviceRuntime, config: DeviceConfig) -> None:
    """Apply a deployment's configuration; a model the runtime refused fails this device's deployment."""
    runtime.apply_config(config)
    health = runtime.health()
    if config.modelComponent and health.model_state is ModelState.REJECTED:
        raise ModelFormatError(f"{config.modelComponent} {config.modelComponentVersion}: {health.model_detail}")


class SimulatedDevice:
    """One Greengrass core device as the local stack simulates it (a stand-in, running real device code)."""

    def __init__(self, thing_name: str, root: Path, *, broker: tuple[str, int], artifacts: ArtifactStore) -> None:
        self.thing_name = thing_name
        work = root / "work" / INFERENCE_COMPONENT
        work.mkdir(parents=True, exist_ok=True)
        self._buffer = SqliteBuffer(work / BUFFER_FILE, thing_name)
        host, port = broker
        self._uplink = MqttUplink.connect(host, port, thing_name, timeout_s=UPLINK_TIMEOUT_S)
        self.runtime = DeviceRuntime(
            thing_name=thing_name,
            buffer=self._buffer,
            uplink=self._uplink,
            clock=time.time,
            model_root=model_root(root),
            config=DeviceConfig(),
            store_dir=work / STORE_FOLDER,
        )
        self.nucleus = LocalNucleus(thing_name, root, artifacts=artifacts, on_configuration=self._configure)
        self._inputs = RequestQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.runtime.run, args=(self._inputs, self._stop), name=f"device-{thing_name}", daemon=True
        )
        self.submitted = 0
        self.final_health: HealthReport | None = None
        """The runtime's last health, taken after its loop ended and before the buffer closed."""

    def _configure(self, config: DeviceConfig) -> None:
        apply_deployment(self.runtime, config)

    def start(self) -> None:
        """Start the component's main loop."""
        self._thread.start()

    def submit(self, request_id: str, features: Sequence[float]) -> None:
        """A local sensor publishes one inference request (the IPC pub/sub path on a real device)."""
        self.submitted += 1
        self._inputs.put((request_id, np.asarray(features, dtype=np.float64)))

    def health(self) -> HealthReport:
        """The runtime's current health, read in-process (the cloud reads the shadow instead)."""
        return self.runtime.health()

    def settled(self) -> bool:
        """Every submitted request answered and every record delivered."""
        report = self.health()
        answered = report.inferences + report.rejected_inputs
        return self._inputs.empty() and answered >= self.submitted and report.buffer_depth == 0

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop (it forwards and reports once more), then release the buffer and connection; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        self.final_health = self.runtime.health()
        self._uplink.close()
        self._buffer.close()
