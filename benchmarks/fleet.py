"""The stepped fleet at scale: a simulated day of the built-in fleet-day scenario (1,000 devices, drift, a
fleet-wide outage, a flapping partition, an IoT Core restart and a bad candidate), end to end through the
scenario runner, with its wall time and peak memory.

- wall_s: the whole run (provisioning, training, every step, the drain, the summary), on this machine;
- peak_rss_mb: the process's peak resident set (ru_maxrss), sessions shared per model version, buffers on disk;
- records: durable buffer records the fleet produced (each a micro-batch of results, or a sample), all
  delivered (the run fails otherwise); records_per_wall_s: records / wall_s.

--quick runs the same scenario on 250 devices for six simulated hours (no drift, retrain or fleet-wide
outage in that span: the bad candidate and the flapping partition only).

    python benchmarks/fleet.py [--quick]

Prints the run's reliability figures, then, as its last line, one JSON object with the keys devices,
simulated_s, wall_s, peak_rss_mb, records, records_per_wall_s.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

from _common import emit, parse_args

from edgeloop.local.loop import run_scenario
from edgeloop.local.sim.scenario import BUILT_IN, Scenario

KEYS = ("devices", "simulated_s", "wall_s", "peak_rss_mb", "records", "records_per_wall_s")
QUICK = {"devices": 250, "canary_devices": 10, "duration_s": 21_600.0}


def main() -> None:
    args = parse_args(__doc__ or "")
    spec = dict(BUILT_IN["fleet-day"])
    if args.quick:
        spec.update(QUICK, name="fleet-day-quick")
        spec["drift"] = []
        spec["outages"] = [o for o in spec["outages"] if o["from_s"] < QUICK["duration_s"]]
    scenario = Scenario.from_dict(spec)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-fleet-") as out:
        summary = run_scenario(scenario, Path(out), lambda message: None)
    wall_s = time.monotonic() - started
    reliability = summary["reliability"]
    print(json.dumps({"reliability": reliability, "run": summary["run"]}))
    records = int(reliability["records_produced"])
    emit(
        {
            "devices": scenario.devices,
            "simulated_s": scenario.duration_s,
            "wall_s": round(wall_s, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "records": records,
            "records_per_wall_s": round(records / wall_s, 1),
        },
        KEYS,
    )


if __name__ == "__main__":
    main()
