"""The cost model against sums done by hand from the published us-east-1 prices."""

from __future__ import annotations

import pytest

from edgeloop.core.errors import ValidationError
from edgeloop.local.sim.cost import (
    MESSAGE_UNIT_BYTES,
    MONTH_S,
    SHADOW_UNIT_BYTES,
    CostEstimate,
    Metered,
    Pricing,
    UplinkUsage,
    estimate,
)

ONE_MONTH_ONE_DEVICE = UplinkUsage(
    devices=1,
    duration_s=MONTH_S,
    readings=1_000_000,
    messages=Metered(1000, 1000),
    shadow_updates=Metered(100, 200),
    rules_triggered=Metered(1000, 1000),
    s3_puts=1000,
)
"""Edge: 43,200 min x 0.08/M = 0.003456; 1,000 msgs 0.001; 200 shadow units 0.00025; rules and actions
0.00015 each; 1,000 PUTs 0.005; Greengrass 0.16. Raw: the same minutes and shadow, 1 M messages 1.00,
1 M rules 0.15, 1 M actions 0.15."""
TEN_DEVICES_ONE_HOUR_HALF_ONLINE = UplinkUsage(
    devices=10,
    duration_s=3600,
    readings=36_000,
    messages=Metered(100, 100),
    rules_triggered=Metered(100, 100),
    connected_minutes=300,
)
"""x720 hours a month, /10 devices = x72. Edge: 300 min 0.000024 -> 0.001728; 100 msgs 0.0001 -> 0.0072;
rules and actions 0.000015 -> 0.00108 each; Greengrass 0.16. Raw: 36,000 msgs 0.036 -> 2.592; rules and
actions 0.0054 -> 0.3888 each; the same minutes."""
TEN_READINGS_A_SECOND = UplinkUsage(devices=1, duration_s=1, readings=10)
"""The field notes' raw figure: 25.92 M readings a month -> 25.92 + 3.888 + 3.888 + 0.003456 connectivity."""


@pytest.mark.parametrize(
    ("usage", "edge", "raw"),
    [
        (ONE_MONTH_ONE_DEVICE, 0.170006, 1.303706),
        (TEN_DEVICES_ONE_HOUR_HALF_ONLINE, 0.171088, 3.371328),
        (TEN_READINGS_A_SECOND, 0.163456, 33.699456),
    ],
    ids=["one-month-one-device", "ten-devices-one-hour", "ten-readings-a-second"],
)
def test_estimate_matches_the_hand_computed_figures(usage: UplinkUsage, edge: float, raw: float) -> None:
    cost = estimate(usage)
    assert cost.edge_usd_per_device_month == pytest.approx(edge, abs=1e-9)
    assert cost.raw_usd_per_device_month == pytest.approx(raw, abs=1e-9)
    assert sum(cost.edge_breakdown.values()) == pytest.approx(cost.edge_usd_per_device_month)
    assert sum(cost.raw_breakdown.values()) == pytest.approx(cost.raw_usd_per_device_month)


def test_breakdown_names_each_line_item() -> None:
    cost = estimate(ONE_MONTH_ONE_DEVICE)
    edge = {"connectivity": 0.003456, "messaging": 0.001, "shadow": 0.00025, "rules": 0.00015}
    edge |= {"actions": 0.00015, "s3_puts": 0.005, "greengrass": 0.16}
    assert cost.edge_breakdown == pytest.approx(edge)
    assert cost.raw_breakdown == pytest.approx(
        {"connectivity": 0.003456, "messaging": 1.0, "shadow": 0.00025, "rules": 0.15, "actions": 0.15}
    )


def test_actions_per_rule_multiplies_the_actions_executed() -> None:
    two = estimate(UplinkUsage(1, MONTH_S, 0, rules_triggered=Metered(1000, 1000), actions_per_rule=2))
    assert two.edge_breakdown["actions"] == pytest.approx(0.0003)


@pytest.mark.parametrize(
    ("sizes", "unit", "expected"),
    [
        ([], MESSAGE_UNIT_BYTES, Metered(0, 0)),
        ([0, 1, 5120], MESSAGE_UNIT_BYTES, Metered(3, 3)),
        ([5121, 8 * 1024, 10240, 10241], MESSAGE_UNIT_BYTES, Metered(4, 2 + 2 + 2 + 3)),
        ([1024, 1025, 8192], SHADOW_UNIT_BYTES, Metered(3, 1 + 2 + 8)),
    ],
)
def test_of_sizes_bills_whole_units_per_request(sizes: list[int], unit: int, expected: Metered) -> None:
    assert Metered.of_sizes(sizes, unit) == expected


@pytest.mark.parametrize(
    ("count", "total", "expected"),
    [(0, 0, Metered(0, 0)), (10, 1000, Metered(10, 10)), (10, 60_000, Metered(10, 20)), (3, 0, Metered(3, 3))],
)
def test_of_mean_assumes_every_request_is_the_mean_size(count: int, total: int, expected: Metered) -> None:
    assert Metered.of_mean(count, total, MESSAGE_UNIT_BYTES) == expected


def test_assumptions_state_prices_metering_usage_and_sources() -> None:
    cost = estimate(TEN_DEVICES_ONE_HOUR_HALF_ONLINE).to_dict()
    assumptions = cost["assumptions"]
    assert isinstance(assumptions, dict)
    assert assumptions["region"] == "us-east-1"
    assert assumptions["month_days"] == 30
    assert assumptions["prices"]["messaging_per_million"] == 1.0
    assert assumptions["metering"] == {"message_unit_bytes": 5120, "shadow_unit_bytes": 1024, "rule_unit_bytes": 5120}
    assert assumptions["usage"]["connected_minutes"] == 300
    assert any("iot-core/pricing" in s for s in assumptions["sources"])
    assert set(cost) >= {"edge_usd_per_device_month", "raw_usd_per_device_month", "assumptions"}


def test_a_different_pricing_is_honoured() -> None:
    free_messages = Pricing(messaging_per_million=0.0, greengrass_per_core_device_month=0.0)
    cost = estimate(ONE_MONTH_ONE_DEVICE, free_messages)
    assert cost.edge_breakdown["messaging"] == 0.0
    assert cost.raw_usd_per_device_month == pytest.approx(0.303706)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"devices": 0, "duration_s": 1, "readings": 0}, "devices"),
        ({"devices": 1, "duration_s": 0, "readings": 0}, "duration_s"),
        ({"devices": 1, "duration_s": 1, "readings": -1}, "usage"),
    ],
)
def test_impossible_usage_is_refused_by_name(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        UplinkUsage(**kwargs)  # type: ignore[arg-type]


def test_units_below_count_are_refused() -> None:
    with pytest.raises(ValidationError, match="metered"):
        Metered(3, 2)


def test_estimate_is_plain_data() -> None:
    cost = estimate(TEN_READINGS_A_SECOND)
    assert isinstance(cost, CostEstimate)
    assert cost.to_dict()["raw_usd_per_device_month"] == 33.699456


def test_break_even_is_the_fixed_fee_over_the_per_reading_saving() -> None:
    """ONE_MONTH_ONE_DEVICE by hand: the edge's per-reading items 0.001 + 0.00015 x 2 + 0.005 = 0.0063 for a
    million readings, raw's 1.30; the $0.16 fee is paid back after 0.16 / (1.30 - 0.0063) M readings a month."""
    even = estimate(ONE_MONTH_ONE_DEVICE).break_even
    assert even["edge_usd_per_million_readings"] == pytest.approx(0.0063)
    assert even["raw_usd_per_million_readings"] == pytest.approx(1.30)
    assert even["requests_per_s_per_device"] == pytest.approx(0.16 / (1.30 - 0.0063) * 1e6 / MONTH_S, rel=1e-4)
    assert "above" in str(even["why"])  # 1 M readings a month is 0.39 a second, above the 0.048 break-even


def test_at_the_break_even_rate_edge_and_raw_cost_the_same() -> None:
    """Scale a run's usage to the computed rate (same per-reading usage): the two totals meet there."""
    slow = UplinkUsage(
        devices=1000, duration_s=86_400, readings=1000 * 1440, messages=Metered(48_000, 48_000),
        shadow_updates=Metered(24_000, 24_000), rules_triggered=Metered(48_000, 48_000), s3_puts=48_000,
    )  # fmt: skip
    cost = estimate(slow)
    assert cost.edge_usd_per_device_month > cost.raw_usd_per_device_month  # a reading a minute: raw is cheaper
    rate = cost.break_even["requests_per_s_per_device"]
    assert isinstance(rate, float)
    factor = rate * 86_400 / 1440
    scaled = UplinkUsage(
        devices=1000, duration_s=86_400, readings=round(1000 * 1440 * factor),
        messages=Metered(round(48_000 * factor), round(48_000 * factor)), shadow_updates=Metered(24_000, 24_000),
        rules_triggered=Metered(round(48_000 * factor), round(48_000 * factor)), s3_puts=round(48_000 * factor),
    )  # fmt: skip
    at = estimate(scaled)
    assert at.edge_usd_per_device_month == pytest.approx(at.raw_usd_per_device_month, rel=1e-3)
    assert "below" in str(cost.break_even["why"])


def test_no_saving_per_reading_no_break_even() -> None:
    costly = UplinkUsage(
        devices=1, duration_s=MONTH_S, readings=10, messages=Metered(10, 10), rules_triggered=Metered(10, 10),
        s3_puts=10,
    )  # fmt: skip
    assert estimate(costly).break_even["requests_per_s_per_device"] is None
    assert estimate(UplinkUsage(devices=1, duration_s=60, readings=0)).break_even["requests_per_s_per_device"] is None


def test_the_cost_page_states_the_break_even_floor_the_prices_give() -> None:
    """docs/cost.md's floor: the fee over raw's per-reading price, as if the edge paid nothing per reading."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "cost.md").read_text(encoding="utf-8")
    p = Pricing()
    per_reading = (p.messaging_per_million + p.rules_triggered_per_million + p.actions_executed_per_million) / 1e6
    floor = p.greengrass_per_core_device_month / per_reading / MONTH_S
    assert f"{floor:.4f} requests/s per device ({floor * 60:.2f} a" in " ".join(page.split())
    assert f"{p.greengrass_per_core_device_month:.2f} per device per month" in page
    assert f"{per_reading * 1e6:.2f} per million readings" in page
