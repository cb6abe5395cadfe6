"""The stepped fleet through bad days: partitions (one flapping), a ring cut off through a rollout, an IoT Core
restart that loses acknowledgements, and a bad candidate. Nothing is lost, nothing is counted twice, the
offline ring catches up, and the bad candidate is reverted in the canary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgeloop.local.loop import run_scenario
from edgeloop.local.sim.scenario import Scenario

BAD_DAY: dict[str, Any] = {
    "name": "bad-day",
    "dataset": "builtin:digits",
    "initial_rows": 900,
    "devices": 4,
    "duration_s": 5400.0,
    "requests_per_s": 0.1,
    "step_s": 60.0,
    "forward_interval_s": 120.0,
    "outages": [
        {"kind": "partition", "scope": "ring", "ring": "broad", "from_s": 0.0, "to_s": 900.0},
        {"kind": "partition", "scope": "share", "share": 0.5, "from_s": 1800.0, "to_s": 2700.0, "flap_s": 180.0},
        {"kind": "restart", "from_s": 3900.0, "to_s": 4020.0},
    ],
    "bad_candidates": [{"kind": "inaccurate", "at_s": 3000.0}, {"kind": "selftest", "at_s": 3300.0}],
    "device_config": {"healthIntervalSeconds": 120.0, "healthMinIntervalSeconds": 60.0},
}


@pytest.mark.slow
def test_a_bad_day_loses_nothing_counts_nothing_twice_and_ends_on_last_known_good(tmp_path: Path) -> None:
    summary = run_scenario(Scenario.from_dict(BAD_DAY), tmp_path, lambda message: None)
    reliability, uplink = summary["reliability"], summary["uplink"]
    assert reliability["records_lost"] == 0
    assert reliability["records_produced"] == reliability["records_delivered"] > 0
    assert reliability["duplicates_ingested"] == 0
    assert uplink["acks_lost"] > 0, "the restart and the flapping cut links mid-publish"
    assert reliability["duplicates_received"] >= uplink["acks_lost"], "each message whose ack was lost came again"
    assert uplink["publishes_refused_offline"] > 0
    assert reliability["max_buffer_depth"] > 0
    assert reliability["outage_s"] == 900.0 + 900.0 + 120.0
    refused = reliability["requests_refused"]
    assert refused == 3 * 90, "only the broad ring's requests before its first model arrived (900 s at 0.1/s)"
    assert reliability["answers_received"] + refused == reliability["requests"], "every other one answered"

    outcomes = [(r["version"], r["outcome"], r["bad_kind"]) for r in summary["rollouts"]]
    assert outcomes == [(1, "completed", None), (2, "reverted", "inaccurate"), (3, "reverted", "selftest")]
    assert [r["rings_reached"] for r in summary["rollouts"][1:]] == [["canary"], ["canary"]]
    assert summary["rollouts"][2]["stopped_by"] == "device verification: self-test failed"
    last = summary["timeline"]["points"][-1]
    assert last["devices_by_version"] == {"1": 4}, "the broad ring, offline through v1's rollout, caught up"
    kinds = {e["kind"] for e in summary["timeline"]["events"]}
    assert {"outage_start", "outage_end", "restart", "rollout_start", "rollout_end", "decision"} <= kinds
    assert summary["cost"]["edge_usd_per_device_month"] < summary["cost"]["raw_usd_per_device_month"]
    assert json.loads((tmp_path / "summary.json").read_text())["reliability"] == reliability
    assert (tmp_path / "report.html").is_file()
