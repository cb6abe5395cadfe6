"""Simulated core devices: the real inference component (edgeloop.device.component) in a thread, reached through
the stand-ins: its nucleus and IPC (edgeloop.local.greengrass, edgeloop.local.ipc) and the local MQTT broker."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop.cloud.artifacts import ArtifactStore
from edgeloop.core.errors import ModelFormatError
from edgeloop.core.health import HealthReport, ModelState
from edgeloop.core.names import HEALTH_SHADOW, INFERENCE_COMPONENT, INPUTS_LOCAL_TOPIC
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.component import HostOptions, start
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.uplink import MqttUplink
from edgeloop.local.greengrass import LocalNucleus
from edgeloop.local.ipc import LocalIpc

UPLINK_TIMEOUT_S = 10.0


def refuse_rejected_model(runtime: DeviceRuntime, config: DeviceConfig) -> None:
    """A model the runtime refused, once the component took the configuration, fails this device's deployment."""
    health = runtime.health()
    if config.modelComponent and health.model_state is ModelState.REJECTED:
        raise ModelFormatError(f"{config.modelComponent} {config.modelComponentVersion}: {health.model_detail}")


def request_message(request_id: str, features: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """A local sensor's inference request as it publishes it on local pub/sub (the component parses it)."""
    return {"request_id": request_id, "features": np.asarray(features, dtype=np.float64).tolist()}


def keep_host_log_level(level: str) -> None:
    """Simulated components share the host's process, whose log level stays the host's (a device sets its own)."""


def work_dir(root: Path) -> Path:
    """The component's work folder in the Greengrass layout: <root>/work/<component>."""
    return root / "work" / INFERENCE_COMPONENT


class SimulatedDevice:
    """One Greengrass core device as the local stack simulates it (a stand-in, running the real component)."""

    def __init__(self, thing_name: str, root: Path, *, broker: tuple[str, int], artifacts: ArtifactStore) -> None:
        self.thing_name = thing_name
        broker_host, broker_port = broker
        self._uplink = MqttUplink.connect(broker_host, broker_port, thing_name, timeout_s=UPLINK_TIMEOUT_S)
        self.nucleus = LocalNucleus(
            thing_name, root, artifacts=artifacts, cloud=self._uplink, on_configuration=self._check
        )
        host = HostOptions(set_log_level=keep_host_log_level)
        self.component = start(self.nucleus.ipc, thing_name, root, work_dir(root), host=host)
        self.runtime = self.component.runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.component.run, args=(self._stop,), name=f"device-{thing_name}", daemon=True
        )
        self.submitted = 0
        self.final_health: HealthReport | None = None
        """The runtime's last health, taken after its loop ended and before the buffer closed."""

    @property
    def ipc(self) -> LocalIpc:
        """The component's IPC stand-in."""
        return self.nucleus.ipc

    def _check(self, config: DeviceConfig) -> None:
        refuse_rejected_model(self.runtime, config)

    def start(self) -> None:
        """Start the component's main loop."""
        self._thread.start()

    def submit(self, request_id: str, features: Sequence[float]) -> None:
        """A local sensor publishes one inference request on the component's local pub/sub topic."""
        self.submitted += 1
        self.ipc.publish(INPUTS_LOCAL_TOPIC, request_message(request_id, features))

    def set_desired(self, desired: Mapping[str, Any]) -> None:
        """The cloud changed the health shadow's desired section: ShadowManager syncs it and publishes the delta."""
        self.ipc.update_desired(HEALTH_SHADOW, desired)

    def health(self) -> HealthReport:
        """The runtime's current health, read in-process (the cloud reads the shadow instead)."""
        return self.runtime.health()

    def settled(self) -> bool:
        """Every submitted request answered and every record delivered."""
        report = self.health()
        answered = report.inferences + report.rejected_inputs
        return self.component.inputs.empty() and answered >= self.submitted and report.buffer_depth == 0

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop (it forwards and reports once more), then release the buffer and connection; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        self.final_health = self.runtime.health()
        self.ipc.close()
        self._uplink.close()
        self.component.close()
