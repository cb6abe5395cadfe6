"""benchmarks/loop.py keeps the figures of a run whose own check fails (it once lost them all), and streams.py
writes a scenario holding only the keys a new user would write."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import loop as loop_benchmark  # noqa: E402
import streams  # noqa: E402

USER_KEYS = {"dataset", "label_column", "exclude_columns", "initial_rows", "drift_at_rows", "devices", "requests_per_s"}


def test_a_stream_scenario_holds_only_what_a_new_user_writes(tmp_path: Path) -> None:
    pytest.importorskip("river")
    scenario = streams.write_stream(streams.STREAMS["sea-abrupt"], tmp_path, seed=3, rows=600)

    written = json.loads((tmp_path / "sea-abrupt.json").read_text())
    assert set(written) == USER_KEYS
    assert written["drift_at_rows"] == scenario["drift_at_rows"]
    assert written["initial_rows"] < written["drift_at_rows"][0] < 600
    assert len((tmp_path / "sea-abrupt.csv").read_text().splitlines()) == 601


@pytest.mark.slow
def test_a_run_that_fails_its_own_check_keeps_its_figures_and_the_reason(tmp_path: Path) -> None:
    pytest.importorskip("river")
    streams.write_stream(streams.STREAMS["sea-abrupt"], tmp_path, seed=3, rows=1500)
    data = json.loads((tmp_path / "sea-abrupt.json").read_text())
    data["drift_at_rows"] = [1400]  # 100 rows after the change: no loop can see it, so the check fails
    (tmp_path / "sea-abrupt.json").write_text(json.dumps(data))

    row = loop_benchmark.run_one(tmp_path / "sea-abrupt.json", 0.1, tmp_path / "out")

    assert "never detected" in row["check"]
    assert row["raw_equivalent_bytes"] > 0
    assert row["labelled"] is not None
    assert row["false_alarms"] == 0
