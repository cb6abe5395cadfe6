"""The health reporter: builds the device's health report from its parts and writes it to the health shadow."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from edgeloop.core.errors import LinkError
from edgeloop.core.health import (
    DETAIL_MAX_BYTES,
    FEATURE_NAME_MAX_BYTES,
    VERSION_MAX_BYTES,
    HealthReport,
    LatencySummary,
    ReportPolicy,
    clip,
    report_due,
)
from edgeloop.core.names import HEALTH_SHADOW
from edgeloop.core.overrides import OverrideResult
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import RecordBuffer
from edgeloop.device.forwarder import Forwarder
from edgeloop.device.inference import Inference
from edgeloop.device.model_manager import ModelManager
from edgeloop.device.sample_taker import SampleTaker
from edgeloop.device.tally import Tally
from edgeloop.device.uplink import Uplink

log = logging.getLogger(__name__)


class HealthReporter:
    """Reads the model manager, buffer, forwarder, tally, drift window and sample budget into one report."""

    def __init__(
        self,
        *,
        thing_name: str,
        models: ModelManager,
        buffer: RecordBuffer,
        forwarder: Forwarder,
        uplink: Uplink,
        clock: Callable[[], float],
        tally: Tally,
        inference: Inference,
        samples: SampleTaker,
        config: Callable[[], DeviceConfig],
        overrides: Callable[[], OverrideResult],
        component_version: str | None = None,
    ) -> None:
        """config and overrides read what is in force when a report is built."""
        self._thing = thing_name
        self._models = models
        self._buffer = buffer
        self._forwarder = forwarder
        self._uplink = uplink
        self._clock = clock
        self._tally = tally
        self._inference = inference
        self._samples = samples
        self._config = config
        self._overrides = overrides
        self._component_version = component_version
        self._reported: HealthReport | None = None
        self._tried_at: float | None = None

    def health(self) -> HealthReport:
        """The current health report (latency and confidence over the window since the last successful report)."""
        status = self._models.status()
        stats = self._buffer.stats()
        forwarder = self._forwarder.stats()
        tally = self._tally.snapshot()
        now = self._clock()
        oldest = stats.oldest_created_at
        drift = self._inference.score_drift()
        budget = self._samples.budget
        sampling = bool(self._config().samplers or budget.taken or budget.dropped)
        confidences = tally.confidences
        return HealthReport(
            thing_name=self._thing,
            model_name=status.model_name,
            model_version=status.version,
            model_state=status.state,
            model_detail=clip(status.detail, DETAIL_MAX_BYTES),
            inferences=tally.inferences,
            rejected_inputs=tally.rejected_inputs,
            errors=tally.errors,
            latency=LatencySummary.from_samples(tally.latencies),
            buffer_depth=stats.depth,
            records_produced=stats.produced,
            records_delivered=stats.acked,
            connected=self._uplink.connected,
            reported_at=now,
            component_version=_clipped(self._component_version),
            model_component_version=_clipped(status.component_version),
            model_activated_at=status.activated_at,
            model_rollbacks=status.rollbacks,
            model_signed=status.signed,
            model_on_probation=status.on_probation if status.model_name else None,
            mean_confidence=round(sum(confidences) / len(confidences), 4) if confidences else None,
            buffer_bytes=stats.bytes,
            oldest_record_age_s=None if oldest is None else round(max(0.0, now - oldest), 3),
            evictions=dict(stats.evicted_by_kind),
            refusals=dict(stats.refused_by_kind),
            quarantined=stats.quarantined,
            uplink_state=forwarder.state.value,
            last_sync_at=forwarder.last_success_at,
            overrides=self._overrides().report,
            drift_score=None if drift is None else drift.score,
            drift_rows=None if drift is None else drift.rows,
            drifted_features=None if drift is None else _feature_names(drift.drifted_features),
            confidence_shift=None if drift is None else drift.confidence_shift,
            confidence_psi=None if drift is None else drift.confidence_psi,
            samples_taken=budget.taken if sampling else None,
            samples_dropped_budget=budget.dropped if sampling else None,
            sample_bytes_today=budget.spent_on(now) if sampling else None,
        )

    def report(self) -> bool:
        """Write the health shadow now; False (not an exception) when the uplink is down."""
        return self.send(self.health())

    def report_if_due(self) -> bool:
        """Write the health shadow if the interval is up or something significant changed (core.health.report_due)."""
        current = self.health()
        now = current.reported_at
        reason = report_due(self._reported, current, now, ReportPolicy.from_config(self._config()), self._tried_at)
        if reason is None:
            return False
        log.debug("health report due: %s", reason)
        return self.send(current)

    def send(self, report: HealthReport) -> bool:
        """One shadow write; on success the latency and confidence window starts over."""
        self._tried_at = report.reported_at
        try:
            self._uplink.update_shadow(self._thing, HEALTH_SHADOW, report.to_shadow_update())
        except LinkError as exc:
            log.warning("health report not sent: %s", exc)
            return False
        self._reported = report
        self._tally.forget(report.latency.samples)  # samples that arrived since stay for the next report
        return True


def _feature_names(names: Sequence[str]) -> tuple[str, ...]:
    """Drifted feature names cut to their shadow budget."""
    return tuple(clip(name, FEATURE_NAME_MAX_BYTES) for name in names)


def _clipped(version: str | None) -> str | None:
    """A version string cut to its shadow budget."""
    return None if version is None else clip(version, VERSION_MAX_BYTES)
