"""`edgeloop demo`'s parser and printed tables (the runs themselves: tests/local/test_local_demo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgeloop.cli.demo import render_scenario, render_summary
from edgeloop.cli.main import main
from edgeloop.local.demo_options import MAX_DEVICES


def _summary() -> dict[str, Any]:
    health = {"model_version": 1, "model_state": "active", "buffer_depth": 0, "latency": {"samples": 0}}
    return {
        "model": {
            "name": "digits",
            "version": 1,
            "sha256": "ab" * 32,
            "holdout_accuracy": 0.97,
            "approval": "Approved",
        },
        "records": {"produced": 3, "delivered": 3, "lost": 0, "duplicates_ignored": 0},
        "devices": [
            {
                "thing_name": "edgeloop-device-001",
                "health": health,
                "inferences": 9,
                "stream_accuracy": 1.0,
                "results_delivered": 9,
                "shadow_version": 4,
            },
        ],
        "rollouts": [],
    }


def test_the_device_table_names_the_shadow_revision_apart_from_the_model_version() -> None:
    lines = render_summary(_summary(), Path("out/summary.json")).splitlines()
    header, row = lines[3], lines[4]
    assert header.split()[-3:] == ["state", "shadow", "document"]
    assert row.split()[1] == "v1"
    assert row.split()[-3:] == ["active", "revision", "4"]
    assert "(v4)" not in row, "a shadow document revision must not read as a model version"


def test_devices_help_names_the_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert f"1-{MAX_DEVICES}" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("count", ["0", str(MAX_DEVICES + 1)])
def test_devices_out_of_range_exit_2_naming_the_range(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--devices", count])
    assert exit_info.value.code == 2
    assert f"must be between 1 and {MAX_DEVICES}, got {count}" in capsys.readouterr().err


def test_the_scenario_summary_keys_its_three_uplink_figures() -> None:
    summary = {
        "loop": {"sample_bytes_uploaded": 10, "sample_messages_uploaded": 1},
        "uplink": {"messages": 4, "bytes": 40, "shadow_updates": 2},
        "timeline": {"points": [{"t_s": 0.0, "sent_messages_incl_shadow": 6}]},
        "rollouts": [],
    }
    text = render_scenario(summary, Path("out/summary.json"))
    assert '"sample_bytes_uploaded": 10' in text
    [key] = [line for line in text.splitlines() if line.startswith("key: ")]
    for figure in ("loop.sample_*_uploaded", "uplink.messages/bytes", "sent_*_incl_shadow"):
        assert figure in key
