"""The runtime's health report: every field wired from its source, written when due, overrides applied locally."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support import FakeClock

from edgeloop.core.health import REPORTED_MAX_BYTES, HealthReport, ModelState
from edgeloop.core.names import HEALTH_SHADOW, model_component_name
from edgeloop.core.overrides import NOT_OVERRIDABLE
from edgeloop.core.records import InferenceResult, RecordKind
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.uplink import MemoryUplink

if TYPE_CHECKING:
    from conftest import DigitsModel, ModelDirFactory

THING = "dev-1"
COMPONENT = model_component_name("digits")
MiB = 1024 * 1024


class Device:
    """A runtime over an in-memory buffer and uplink, on a clock the test moves."""

    def __init__(self, model_root: Path, config: DeviceConfig, buffer: MemoryBuffer | None = None) -> None:
        self.clock = FakeClock()
        self.buffer = buffer or MemoryBuffer(THING)
        self.uplink = MemoryUplink()
        self.runtime = DeviceRuntime(
            thing_name=THING,
            buffer=self.buffer,
            uplink=self.uplink,
            clock=self.clock,
            model_root=model_root,
            config=config,
            component_version="1.4.2",
        )

    def reports(self) -> list[HealthReport]:
        assert {(thing, name) for thing, name, _ in self.uplink.shadows} <= {(THING, HEALTH_SHADOW)}
        return [HealthReport.from_shadow(document) for _, _, document in self.uplink.shadows]


def with_model(version: int = 1, **values: Any) -> DeviceConfig:
    return DeviceConfig(modelComponent=COMPONENT, modelComponentVersion=f"{version}.0.0", **values)


@pytest.fixture
def make_device(model_root: Path, make_model_dir: ModelDirFactory) -> Callable[..., Device]:
    make_model_dir(1)

    def make(config: DeviceConfig | None = None, buffer: MemoryBuffer | None = None) -> Device:
        return Device(model_root, config or with_model(), buffer)

    return make


def features(model: DigitsModel, n: int) -> list[tuple[str, list[float]]]:
    return [(f"r{i}", model.rows[i % len(model.rows)].tolist()) for i in range(n)]


# --- what the report holds ------------------------------------------------------------------------


def test_a_fresh_device_reports_what_it_knows_and_nothing_invented(make_device: Callable[..., Device]) -> None:
    health = make_device().runtime.health()

    assert (health.model_name, health.model_version, health.model_state) == ("digits", 1, ModelState.ACTIVE)
    assert (health.component_version, health.model_component_version) == ("1.4.2", "1.0.0")
    assert health.model_activated_at == 1_000.0
    assert (health.model_rollbacks, health.model_signed) == (0, False)
    assert health.mean_confidence is None
    assert (health.latency.samples, health.buffer_depth, health.buffer_bytes) == (0, 0, 0)
    assert health.oldest_record_age_s is None
    assert health.evictions == {"alert": 0, "event": 0, "sample": 0, "result": 0}
    assert (health.quarantined, health.uplink_state, health.last_sync_at) == (0, "connected", None)


def test_buffer_figures_come_from_the_buffer(make_device: Callable[..., Device], digits_model: DigitsModel) -> None:
    device = make_device()
    device.runtime.infer(features(digits_model, 6))
    device.clock.now += 42.5

    health = device.runtime.health()

    assert (health.inferences, health.buffer_depth, health.records_produced) == (6, 1, 1)  # one micro-batch
    assert health.buffer_bytes == device.buffer.stats().bytes > 0
    assert health.oldest_record_age_s == 42.5
    assert health.latency.samples == 6


def test_mean_confidence_is_over_the_window(make_device: Callable[..., Device], digits_model: DigitsModel) -> None:
    device = make_device()
    answers = device.runtime.infer(features(digits_model, 7))
    confidences = [a.confidence for a in answers if isinstance(a, InferenceResult)]

    assert device.runtime.health().mean_confidence == pytest.approx(sum(confidences) / 7, abs=1e-4)
    device.runtime.report_health()
    assert device.runtime.health().mean_confidence is None


def test_evictions_show_by_class(make_device: Callable[..., Device]) -> None:
    buffer = MemoryBuffer(THING)
    device = make_device(config=with_model(bufferMaxBytes=MiB), buffer=buffer)
    blob = "x" * (300 * 1024)
    for _ in range(5):
        buffer.append(RecordKind.SAMPLE, [{"blob": blob}], device.clock())

    health = device.runtime.health()

    assert health.evictions is not None
    assert health.evictions["sample"] == buffer.stats().evicted_by_kind["sample"] > 0
    assert health.lost_total is not None
    assert health.lost_total > 0


def test_uplink_state_and_last_sync_come_from_the_forwarder(
    make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    device = make_device()
    device.runtime.infer(features(digits_model, 3))
    device.clock.now = 1_010.0
    device.runtime.forward(flush=True)
    assert device.runtime.health().last_sync_at == 1_010.0

    device.uplink.online = False
    device.runtime.infer(features(digits_model, 3))
    device.clock.now = 1_020.0
    device.runtime.forward(flush=True)

    health = device.runtime.health()
    assert health.uplink_state in {"offline", "backing_off"}
    assert (health.connected, health.last_sync_at) == (False, 1_010.0)


def test_a_rejected_model_shows_with_its_reason(make_device: Callable[..., Device]) -> None:
    device = make_device()
    device.runtime.apply_config(DeviceConfig(modelComponent=COMPONENT, modelComponentVersion="9.0.0"))

    health = device.runtime.health()

    assert (health.model_state, health.model_version) == (ModelState.REJECTED, 1)
    assert "9.0.0" in health.model_detail


def test_the_written_document_parses_back_and_fits(
    make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    device = make_device()
    device.runtime.infer(features(digits_model, 4))
    expected = device.runtime.health()

    assert device.runtime.report_health() is True

    [(_, _, document)] = device.uplink.shadows
    assert HealthReport.from_shadow(document) == expected
    assert len(json.dumps(document["state"]["reported"]).encode()) <= REPORTED_MAX_BYTES


# --- when it is written ---------------------------------------------------------------------------


def test_reports_follow_the_interval_and_changes_but_never_the_floor(
    make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    device = make_device(with_model(healthIntervalSeconds=30.0, healthMinIntervalSeconds=2.0))
    runtime, clock = device.runtime, device.clock
    due = runtime.report_health_if_due

    assert due() is True  # first
    clock.now += 1.0
    runtime.infer(features(digits_model, 3))
    assert due() is False  # counts alone wait for the interval
    runtime.apply_config(with_model(9, healthIntervalSeconds=30.0, healthMinIntervalSeconds=2.0))
    assert due() is False  # a change, but within the floor
    clock.now += 1.0
    assert due() is True  # the change goes out once the floor has passed
    clock.now += 5.0
    assert due() is False
    clock.now += 25.0
    assert due() is True  # the interval

    states = [report.model_state for report in device.reports()]
    assert states == [ModelState.ACTIVE, ModelState.REJECTED, ModelState.REJECTED]


def test_a_failed_write_is_retried_after_the_floor_not_every_tick(
    make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    device = make_device(with_model(healthIntervalSeconds=30.0, healthMinIntervalSeconds=2.0))
    device.uplink.online = False
    assert device.runtime.report_health_if_due() is False
    device.clock.now += 1.0
    device.uplink.online = True
    assert device.runtime.report_health_if_due() is False  # within the floor of the failed attempt
    device.clock.now += 1.0
    assert device.runtime.report_health_if_due() is True
    assert len(device.reports()) == 1


def test_the_latency_and_confidence_window_restarts_only_after_a_write(
    make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    device = make_device()
    device.runtime.infer(features(digits_model, 5))
    device.uplink.online = False
    assert device.runtime.report_health() is False
    assert device.runtime.health().latency.samples == 5

    device.uplink.online = True
    assert device.runtime.report_health() is True

    health = device.runtime.health()
    assert (health.latency.samples, health.mean_confidence, health.inferences) == (0, None, 5)


# --- overrides handed to the runtime --------------------------------------------------------------


def test_overrides_are_applied_and_reported(make_device: Callable[..., Device]) -> None:
    device = make_device()

    result = device.runtime.apply_overrides({"batchMax": 4, "logLevel": "DEBUG"})

    assert result.applied == {"batchMax": 4, "logLevel": "DEBUG"}
    assert (device.runtime.config.batchMax, device.runtime.config.logLevel) == (4, "DEBUG")
    assert device.runtime.health().overrides == result.report
    assert device.runtime.health().model_state == ModelState.ACTIVE


def test_a_rejected_override_keeps_the_previous_config_and_says_why(make_device: Callable[..., Device]) -> None:
    device = make_device()
    device.runtime.apply_overrides({"batchMax": 4})
    before = device.runtime.config

    result = device.runtime.apply_overrides({"batchMax": -3, "modelComponentVersion": "2.0.0"})

    assert device.runtime.config == device.runtime.config.__class__(**{**before.to_config(), "batchMax": 32})
    assert "outside" in result.rejected["batchMax"]
    assert result.rejected["modelComponentVersion"] == NOT_OVERRIDABLE
    assert device.runtime.health().model_version == 1
    device.runtime.report_health()
    assert device.reports()[-1].overrides.rejected == result.rejected


def test_an_override_change_is_reported_before_the_interval(make_device: Callable[..., Device]) -> None:
    device = make_device(with_model(healthIntervalSeconds=60.0, healthMinIntervalSeconds=1.0))
    assert device.runtime.report_health_if_due() is True
    device.clock.now += 1.0

    device.runtime.apply_overrides({"probationMaxErrorRate": 0.5})

    assert device.runtime.report_health_if_due() is True
    assert device.reports()[-1].overrides.applied == {"probationMaxErrorRate": 0.5}


def test_overrides_follow_a_configuration_applied_directly(make_device: Callable[..., Device]) -> None:
    device = make_device()
    device.runtime.apply_overrides({"batchMax": 4})
    device.runtime.apply_config(with_model(batchWaitMs=7))  # the local nucleus path: no reconfigure

    device.runtime.apply_overrides({"batchMax": 5})

    assert (device.runtime.config.batchMax, device.runtime.config.batchWaitMs) == (5, 7)


def test_reconfigure_keeps_the_overrides_on_a_new_base(make_device: Callable[..., Device]) -> None:
    device = make_device()
    device.runtime.apply_overrides({"batchMax": 4})

    device.runtime.reconfigure(with_model(batchMax=64, healthIntervalSeconds=9.0))

    assert (device.runtime.config.batchMax, device.runtime.config.healthIntervalSeconds) == (4, 9.0)
    device.runtime.apply_overrides({})
    assert device.runtime.config == with_model(batchMax=64, healthIntervalSeconds=9.0)


def test_inferences_made_while_a_report_is_in_flight_stay_for_the_next_report(
    make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    device = make_device()
    runtime = device.runtime
    runtime.infer(features(digits_model, 3))
    snapshot = runtime.health()  # the report that is about to be sent covers these 3
    runtime.infer(features(digits_model, 2))  # arrive before the send completes

    assert runtime._health.send(snapshot) is True

    after = runtime.health()
    assert snapshot.latency.samples == 3
    assert after.latency.samples == 2
    assert after.mean_confidence is not None
