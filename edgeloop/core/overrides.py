"""Config overrides from the health shadow's desired section: which keys, how they are checked, what is reported.

An operator may tune a running device (thresholds, rates, log level) by writing a subset of the
DeviceConfig keys in `desired`; model selection, keys and sizes stay with the deployment. Each key is
validated on its own against the base configuration, then all accepted keys together; what fails is
reported with its reason and leaves the base value in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeloop.core.errors import ConfigError
from edgeloop.core.health import (
    MAX_OVERRIDE_VALUE_BYTES,
    MAX_REJECTED_OVERRIDES,
    OVERRIDE_KEY_MAX_BYTES,
    OVERRIDE_REASON_MAX_BYTES,
    OverridesReport,
    clip,
)
from edgeloop.core.samplers import describe
from edgeloop.core.settings import DeviceConfig

DESIRED_CHANGE_OPERATION = "update/delta"
"""The health-shadow operation on which ShadowManager publishes desired-state changes to local pub/sub."""

OVERRIDABLE_KEYS = frozenset(
    {
        "healthIntervalSeconds",
        "healthMinIntervalSeconds",
        "probationMaxErrorRate",
        "probationSeconds",
        "probationMinRequests",
        "batchMax",
        "batchWaitMs",
        "resultCommitMs",
        "forwardBatchSize",
        "logLevel",
        "driftThreshold",
        "driftMinRows",
        "driftWindow",
        "samplers",
        "sampleBytesPerDay",
    }
)
"""DeviceConfig keys the desired state may override; everything else belongs to the deployment.

The privacy policy and the fleet salt are not among them: loosening what leaves a device is a deployment,
reviewed like one, never a shadow write."""

NOT_OVERRIDABLE = "not overridable from the shadow (see edgeloop.core.overrides.OVERRIDABLE_KEYS)"


@dataclass(frozen=True)
class OverrideResult:
    """The configuration in force after applying a desired section, and the report of what happened."""

    config: DeviceConfig
    report: OverridesReport = field(default_factory=OverridesReport)

    @property
    def applied(self) -> Mapping[str, Any]:
        """Overrides now in force."""
        return self.report.applied

    @property
    def rejected(self) -> Mapping[str, str]:
        """Refused overrides and why."""
        return self.report.rejected


def resolve_overrides(base: DeviceConfig, desired: Mapping[str, Any] | None) -> OverrideResult:
    """Apply the overridable keys of desired on top of base; refused keys keep the base value, with a reason."""
    rejected: dict[str, str] = {}
    accepted: dict[str, Any] = {}
    for key, value in sorted((desired or {}).items(), key=lambda item: str(item[0])):
        reason = _check(base, key, value)
        if reason is None:
            accepted[key] = value
        else:
            rejected[key] = reason
    config = base
    if accepted:
        try:
            config = DeviceConfig.from_config({**base.to_config(), **accepted})
        except ConfigError as exc:
            rejected.update(dict.fromkeys(accepted, f"refused together with the other overrides: {exc}"))
            accepted = {}
    applied = {key: reported_value(getattr(config, key)) for key in accepted}
    return OverrideResult(config=config, report=OverridesReport(applied=applied, rejected=_clipped(rejected)))


def reported_value(value: object) -> object:
    """An applied override as the shadow lists it: numbers and text as they are, samplers as one short line."""
    if isinstance(value, tuple):
        return clip(describe(value), MAX_OVERRIDE_VALUE_BYTES - 2)
    return value


def _check(base: DeviceConfig, key: object, value: object) -> str | None:
    """Why this one override cannot be applied to base, or None if it can."""
    if not isinstance(key, str) or key not in OVERRIDABLE_KEYS:
        return NOT_OVERRIDABLE
    try:
        DeviceConfig.from_config({**base.to_config(), key: value})
    except ConfigError as exc:
        return exc.message
    return None


def _clipped(rejected: Mapping[str, str]) -> dict[str, str]:
    """Rejections cut to the shadow's budget; what does not fit is counted under the key '...'."""
    kept: dict[str, str] = {}
    hidden = 0
    for key, reason in rejected.items():
        short = clip(str(key), OVERRIDE_KEY_MAX_BYTES)
        if short in kept or len(kept) == MAX_REJECTED_OVERRIDES:
            hidden += 1
        else:
            kept[short] = clip(reason, OVERRIDE_REASON_MAX_BYTES)
    if hidden:
        while len(kept) >= MAX_REJECTED_OVERRIDES:
            kept.popitem()
            hidden += 1
        kept["..."] = f"{hidden} more refused overrides not listed"
    return kept
