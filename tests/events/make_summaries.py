"""Make the summary.json snapshots in tests/events/ from the real runners, small and quick.

    PYTHONPATH=. python tests/events/make_summaries.py            # all three (about a minute on a quiet machine)
    PYTHONPATH=. python tests/events/make_summaries.py fleet      # one of: demo, drift, fleet

summary_demo is the plain `edgeloop demo` (5 devices); summary_drift a shortened drift scenario (3 devices,
30 simulated minutes); summary_fleet a shortened bad day of the stepped fleet (4 devices:
partitions, one flapping, an IoT Core restart, two bad candidates). Each is what the runner wrote to
summary.json. Run it again whenever a runner's summary gains, loses or renames a key:
tests/local/test_local_summary_fixtures.py fails until then.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgeloop.local.demo import SUMMARY_FILE, DemoOptions, run_demo
from edgeloop.local.loop import run_scenario
from edgeloop.local.sim.scenario import BUILT_IN, Scenario

EVENTS_DIR = Path(__file__).resolve().parent
DEMO_DEVICES = 5

DRIFT: Mapping[str, Any] = {
    **BUILT_IN["drift"],
    "name": "drift-short",
    "devices": 3,
    "duration_s": 1800.0,
    "drift": [{"kind": "shift", "at_s": 600.0, "share": 1.0, "magnitude": 1.5}],
    "retraining": {"min_new_labels": 400, "drift_for_s": 240.0, "min_labels_on_drift": 50, "cooldown_s": 7200.0},
}
"""The drift scenario cut to half an hour: drift at 10 minutes, noticed, retrained and rolled out."""

FLEET: Mapping[str, Any] = {
    "name": "bad-day-short",
    "dataset": "builtin:digits",
    "initial_rows": 900,
    "devices": 4,
    "duration_s": 3600.0,
    "requests_per_s": 0.1,
    "step_s": 120.0,
    "forward_interval_s": 240.0,
    "outages": [
        {"kind": "partition", "scope": "ring", "ring": "broad", "from_s": 0.0, "to_s": 720.0},
        {"kind": "partition", "scope": "share", "share": 0.5, "from_s": 1200.0, "to_s": 1800.0, "flap_s": 240.0},
        {"kind": "restart", "from_s": 2640.0, "to_s": 2880.0},
    ],
    "bad_candidates": [{"kind": "inaccurate", "at_s": 1920.0}, {"kind": "selftest", "at_s": 2160.0}],
    "device_config": {"healthIntervalSeconds": 240.0, "healthMinIntervalSeconds": 120.0},
}
"""A shortened bad day of the stepped fleet (tests/local/test_local_fleet.py runs the full one): 30 steps."""

Runner = Callable[[Path, Callable[[str], None]], dict[str, Any]]


def _demo(out: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    return run_demo(DemoOptions(devices=DEMO_DEVICES, out=out), progress)


def _drift(out: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    return run_scenario(Scenario.from_dict(dict(DRIFT)), out, progress)


def _fleet(out: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    return run_scenario(Scenario.from_dict(dict(FLEET)), out, progress)


RUNNERS: Mapping[str, Runner] = {"demo": _demo, "drift": _drift, "fleet": _fleet}
"""Fixture name (tests/events/summary_<name>.json) -> the runner that writes it."""


def run(name: str, out: Path, progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Run one runner into `out` and return the summary.json it wrote there (what the fixture holds)."""
    RUNNERS[name](out, progress)
    summary: dict[str, Any] = json.loads((out / SUMMARY_FILE).read_text())
    return summary


def fixture_path(name: str) -> Path:
    """Where one snapshot lives."""
    return EVENTS_DIR / f"summary_{name}.json"


def main(argv: list[str] | None = None) -> int:
    """Regenerate the snapshots named (all by default) and say how big each is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(RUNNERS)} (default: all)")
    names = parser.parse_args(argv).names or list(RUNNERS)
    unknown = sorted(set(names) - set(RUNNERS))
    if unknown:
        parser.error(f"unknown snapshot(s) {unknown}; expected any of {list(RUNNERS)}")
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"summary-{name}-") as work:
            summary = run(name, Path(work), lambda message: print(f"  {message}", file=sys.stderr))
        text = json.dumps(summary, indent=2) + "\n"
        fixture_path(name).write_text(text)
        print(f"{fixture_path(name).name}: {text.count(chr(10))} lines, run in {summary['run']['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
