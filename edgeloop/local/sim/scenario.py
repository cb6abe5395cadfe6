"""Scenario files for `edgeloop demo --scenario`: what data, how many devices, what goes wrong and when.

A scenario is a JSON or YAML document (the CLI reads the file; this module validates the mapping):

    name: drift                      # shown in the report
    dataset: streams/sea.csv         # builtin:<name>, or a CSV / Parquet / NPZ file (relative to this file)
    label_column: label              # for files: the column (or NPZ array) holding the true labels
    exclude_columns: [t, id]         # file columns that are never features (a timestamp, an id)
    family: auto                     # mlp | trees | linear | auto (files' default: picked by validation; builtins: mlp)
    initial_rows: 600                # the first N rows train the first model; the rest stream to devices
    drift_at_rows: [2000, 3500]      # the file's known change points (0-based data rows): for scoring only
    devices: 5
    duration_s: 3600                 # simulated time; optional for a file: omitted, every row streams once
    label_delay_s: 60                # simulated seconds between a sample's upload and its label in the cloud
    requests_per_s: 1.0              # per device, simulated
    seed: 0
    drift:                           # zero or more events, each on a share of devices from at_s on
      - {kind: shift, at_s: 1200, share: 1.0, magnitude: 4.0}
    samplers: {low_confidence: 0.6, random: 0.01}   # DeviceConfig.samplers
    privacy: {drop: [], laplaceEpsilon: null}        # DeviceConfig.privacy
    retraining: {min_new_labels: 200, drift_bound: 0.2, drift_for_s: 300, min_labels_on_drift: 50,
                 cooldown_s: 3600}
    outages:                         # zero or more (edgeloop/local/sim/outages.py)
      - {kind: partition, scope: fleet, from_s: 1500, to_s: 1800}          # scope: fleet | ring | share
      - {kind: partition, scope: share, share: 0.1, from_s: 600, to_s: 900, flap_s: 60}
      - {kind: restart, from_s: 2400, to_s: 2460}  # the IoT Core stand-in restarts: every link drops
    bad_candidates:                  # simulated bad versions rolled out at at_s; each must be stopped
      - {kind: inaccurate, at_s: 300}                # inaccurate | slow | tampered | selftest
    step_s: 30                       # the virtual clock's step: every device is stepped once per step
    canary_devices: 1                # the first N devices are pinned to the canary ring, the rest to broad
    device_config: {healthIntervalSeconds: 60}       # component configuration keys for every device
    forward_interval_s: 60           # an idle device forwards this often (fuller 5 KB billing units when longer)

Drift kinds: `shift` adds magnitude (in units of each feature's training std) to every feature; `noise`
adds Gaussian noise of that many stds; `rotation` mixes neighbouring features by an angle of magnitude
radians; `concept` keeps the inputs and moves the labels (true label -> (label + magnitude) mod classes),
the drift a model cannot see in its inputs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError
from edgeloop.core.retraining import RetrainingPolicy
from edgeloop.core.settings import DeviceConfig
from edgeloop.local.sim.outages import Outage, parse_outages
from edgeloop.training.config import BUILTIN_PREFIX, BUILTINS, FILE_KINDS
from edgeloop.training.model import AUTO, FAMILIES, MLP

DRIFT_KINDS = ("shift", "noise", "rotation", "concept")
MAX_DEVICES = 1000
MAX_DURATION_S = 7 * 86_400.0
SCENARIO_KEYS = {
    "name",
    "dataset",
    "label_column",
    "exclude_columns",
    "family",
    "initial_rows",
    "drift_at_rows",
    "label_delay_s",
    "devices",
    "duration_s",
    "requests_per_s",
    "seed",
    "drift",
    "samplers",
    "privacy",
    "retraining",
    "outages",
    "bad_candidates",
    "step_s",
    "canary_devices",
    "device_config",
    "forward_interval_s",
}
FAMILY_CHOICES = (*FAMILIES, AUTO)
"""What a scenario's `family` may say: a model family, or `auto` (the training entry point picks by validation)."""
DEFAULT_LABEL_DELAY_S = 60.0
"""A minute from a sample's upload to its label: the quick end of "minutes to hours" (a labelling queue, not a
month's ground truth). A longer delay is one key away; at 300 s a 10-request/s stream spends 3,000 rows waiting
for every label, more than many benchmark streams have after a change."""
MAX_LABEL_DELAY_S = MAX_DURATION_S


class BadKind(StrEnum):
    """The ways a simulated bad candidate can be bad (the local stack builds one of each)."""

    INACCURATE = "inaccurate"
    """Wrong answers, unsure ones: the canary's confidence gate must revert it."""
    SLOW = "slow"
    """Right answers, late: the canary's p99 latency gate must revert it."""
    TAMPERED = "tampered"
    """An artifact changed after signing: device verification must refuse it."""
    SELFTEST = "selftest"
    """Golden rows the model does not reproduce: the device self-test must refuse it."""


BAD_CANDIDATE_KINDS = tuple(kind.value for kind in BadKind)


@dataclass(frozen=True)
class DriftEvent:
    """One change in the world: from at_s on, a share of the devices see their inputs (or labels) move."""

    kind: str
    at_s: float
    share: float
    magnitude: float

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValidationError("drift[].kind", f"{self.kind!r}; expected one of {DRIFT_KINDS}")
        if not 0.0 < self.share <= 1.0:
            raise ValidationError("drift[].share", f"{self.share} is outside (0, 1]")
        if self.at_s < 0:
            raise ValidationError("drift[].at_s", f"must be >= 0, got {self.at_s}")
        if self.kind == "concept" and (self.magnitude < 1 or not float(self.magnitude).is_integer()):
            raise ValidationError(
                "drift[].magnitude", f"a concept drift moves labels by a whole number >= 1, got {self.magnitude}"
            )
        if not math.isfinite(self.magnitude) or self.magnitude <= 0:
            raise ValidationError("drift[].magnitude", f"must be a finite number > 0, got {self.magnitude}")


@dataclass(frozen=True)
class BadCandidate:
    """A simulated bad version the scenario rolls out at at_s: the loop must stop it where it should."""

    kind: str
    at_s: float

    def __post_init__(self) -> None:
        if self.kind not in BAD_CANDIDATE_KINDS:
            raise ValidationError("bad_candidates[].kind", f"{self.kind!r}; expected one of {BAD_CANDIDATE_KINDS}")
        if not math.isfinite(self.at_s) or self.at_s < 0:
            raise ValidationError("bad_candidates[].at_s", f"must be a number >= 0, got {self.at_s}")


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: everything the local runner needs, nothing it has to guess."""

    name: str
    dataset: str
    """builtin:<name>, or the path of a CSV, Parquet or NPZ file (from_dict resolves it against the file's folder)."""
    initial_rows: int
    devices: int
    duration_s: float | None
    """Simulated seconds; None (files only): until every streamed row has been streamed once."""
    requests_per_s: float = 1.0
    seed: int = 0
    label_column: str = "label"
    drift: tuple[DriftEvent, ...] = ()
    samplers: Mapping[str, Any] = field(default_factory=dict)
    privacy: Mapping[str, Any] = field(default_factory=dict)
    retraining: RetrainingPolicy = field(default_factory=RetrainingPolicy)
    outages: tuple[Outage, ...] = ()
    bad_candidates: tuple[BadCandidate, ...] = ()
    step_s: float = 30.0
    canary_devices: int = 1
    device_config: Mapping[str, Any] = field(default_factory=dict)
    forward_interval_s: float = 60.0
    """How long an idle device waits between forward rounds (a backlog drains at once, a step is the floor)."""
    exclude_columns: tuple[str, ...] = ()
    """File columns that are never features (a timestamp, an id); each must exist in the file."""
    family: str | None = None
    """mlp | trees | linear | auto; None resolves to auto for a file, to mlp for a built-in set (unchanged)."""
    drift_at_rows: tuple[int, ...] = ()
    """The file's known change points (0-based data rows): for scoring the run only, never read by the loop."""
    label_delay_s: float = DEFAULT_LABEL_DELAY_S
    """Simulated seconds between a sample's upload and its label reaching the cloud (the oracle labeller's delay)."""

    def __post_init__(self) -> None:
        self._check_data()
        if not 1 <= self.devices <= MAX_DEVICES:
            raise ValidationError("devices", f"{self.devices} is outside [1, {MAX_DEVICES}]")
        if not 0 < self.requests_per_s <= 100:
            raise ValidationError("requests_per_s", f"{self.requests_per_s} is outside (0, 100]")
        if self.initial_rows < 10:
            raise ValidationError("initial_rows", f"must be >= 10 to train a first model, got {self.initial_rows}")
        self._check_times()
        if not math.isfinite(self.step_s) or not 1.0 <= self.step_s <= 3600.0:
            raise ValidationError("step_s", f"{self.step_s} is outside [1, 3600]")
        if not math.isfinite(self.forward_interval_s) or not 1.0 <= self.forward_interval_s <= 86_400.0:
            raise ValidationError("forward_interval_s", f"{self.forward_interval_s} is outside [1, 86400]")
        if not math.isfinite(self.label_delay_s) or not 0.0 <= self.label_delay_s <= MAX_LABEL_DELAY_S:
            raise ValidationError("label_delay_s", f"{self.label_delay_s} is outside [0, {MAX_LABEL_DELAY_S:.0f}]")
        try:  # the fleet's component configuration: refused here, not by every device at deployment time
            DeviceConfig.from_config(dict(self.device_config))
        except ValidationError as exc:
            raise ValidationError("device_config", f"{exc.field}: {exc.message}") from exc
        if not 1 <= self.canary_devices <= self.devices:
            raise ValidationError("canary_devices", f"{self.canary_devices} is outside [1, devices={self.devices}]")

    def _check_data(self) -> None:
        """The dataset is a known built-in set or a file of a kind the loader reads; file-only keys need a file."""
        if self.dataset.startswith(BUILTIN_PREFIX):
            if self.dataset.removeprefix(BUILTIN_PREFIX) not in BUILTINS:
                raise ValidationError("dataset", f"{self.dataset!r}: the built-in sets are {list(BUILTINS)}")
        elif Path(self.dataset).suffix.lower().lstrip(".") not in FILE_KINDS:
            raise ValidationError(
                "dataset", f"{self.dataset!r} is neither builtin:<name> nor a .csv, .parquet or .npz file"
            )
        if self.family is None:
            object.__setattr__(self, "family", AUTO if self.is_file else MLP)  # frozen: resolved once, here
        if self.family not in FAMILY_CHOICES:
            raise ValidationError("family", f"{self.family!r}; expected one of {list(FAMILY_CHOICES)}")
        for key in ("exclude_columns", "drift_at_rows"):
            if getattr(self, key) and not self.is_file:
                raise ValidationError(key, f"names rows or columns of a file; {self.dataset} is a built-in set")
        names = self.exclude_columns
        if any(not name for name in names) or len(set(names)) != len(names) or self.label_column in names:
            raise ValidationError("exclude_columns", f"{list(names)} repeats a name, holds an empty one or the label")
        points = self.drift_at_rows
        if any(b <= a for a, b in itertools.pairwise(points)):
            raise ValidationError("drift_at_rows", f"{list(points)} must be strictly increasing")
        if points and points[0] <= self.initial_rows:
            raise ValidationError(
                "drift_at_rows", f"{points[0]} is not after initial_rows {self.initial_rows} (rows are 0-based)"
            )

    def _check_times(self) -> None:
        """A duration where one is needed, and every timed event before its end."""
        if self.duration_s is None:
            if not self.is_file:
                raise ValidationError("duration_s", f"is required for a built-in set ({self.dataset})")
            return  # the runner knows the file's length: it fixes duration_s, and these checks run then
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValidationError("duration_s", f"{self.duration_s} is outside (0, {MAX_DURATION_S:.0f}]")
        late = [e.at_s for e in self.drift if e.at_s >= self.duration_s]
        if late:
            raise ValidationError("drift[].at_s", f"{late[0]} is not before duration_s {self.duration_s}")
        late = [o.from_s for o in self.outages if o.from_s >= self.duration_s]
        if late:
            raise ValidationError("outages[].from_s", f"{late[0]} is not before duration_s {self.duration_s}")
        late = [b.at_s for b in self.bad_candidates if b.at_s >= self.duration_s]
        if late:
            raise ValidationError("bad_candidates[].at_s", f"{late[0]} is not before duration_s {self.duration_s}")

    @property
    def is_file(self) -> bool:
        """Whether the dataset is the user's own file (streamed in file order) rather than a built-in set."""
        return not self.dataset.startswith(BUILTIN_PREFIX)

    @property
    def run_duration_s(self) -> float:
        """The run's simulated length; a file streamed once has one only after the runner fixed it (load_stream)."""
        if self.duration_s is None:
            raise ValidationError("duration_s", "is not known until the file is loaded (edgeloop.local.world)")
        return self.duration_s

    @property
    def drift_starts_at_s(self) -> float | None:
        """When the first drift event begins (None: the world stays as it was)."""
        return min((e.at_s for e in self.drift), default=None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Path | None = None) -> Scenario:
        """Validate a scenario document; an unknown key or a value of the wrong type names itself.

        base_dir is the scenario file's folder: a relative dataset path is resolved against it.
        """
        d = wire.mapping(data, "scenario")
        wire.only_keys(d, SCENARIO_KEYS, "scenario")
        return cls(
            name=wire.text(d, "name", "scenario") if "name" in d else _default_name(d),
            dataset=_dataset(wire.text(d, "dataset", "scenario"), base_dir),
            label_column=wire.text(d, "label_column", "scenario") if "label_column" in d else "label",
            initial_rows=wire.integer(d, "initial_rows", "scenario", minimum=1),
            devices=wire.integer(d, "devices", "scenario", minimum=1),
            duration_s=wire.number(d, "duration_s", "scenario") if "duration_s" in d else None,
            requests_per_s=wire.number(d, "requests_per_s", "scenario") if "requests_per_s" in d else 1.0,
            seed=wire.integer(d, "seed", "scenario", minimum=0) if "seed" in d else 0,
            drift=tuple(_drift(item, i) for i, item in enumerate(wire.sequence(d, "drift", "scenario")))
            if "drift" in d
            else (),
            samplers=dict(wire.mapping(d.get("samplers", {}), "scenario.samplers")),
            privacy=dict(wire.mapping(d.get("privacy", {}), "scenario.privacy")),
            retraining=RetrainingPolicy.from_dict(d.get("retraining", {}), "scenario.retraining"),
            outages=parse_outages(wire.sequence(d, "outages", "scenario"), "scenario.outages")
            if "outages" in d
            else (),
            bad_candidates=tuple(
                _bad_candidate(item, i) for i, item in enumerate(wire.sequence(d, "bad_candidates", "scenario"))
            )
            if "bad_candidates" in d
            else (),
            step_s=wire.number(d, "step_s", "scenario") if "step_s" in d else 30.0,
            canary_devices=wire.integer(d, "canary_devices", "scenario", minimum=1) if "canary_devices" in d else 1,
            device_config=dict(wire.mapping(d.get("device_config", {}), "scenario.device_config")),
            forward_interval_s=wire.number(d, "forward_interval_s", "scenario") if "forward_interval_s" in d else 60.0,
            exclude_columns=_texts(d, "exclude_columns"),
            family=wire.text(d, "family", "scenario") if "family" in d else None,
            drift_at_rows=_rows(d, "drift_at_rows"),
            label_delay_s=_number_or(d, "label_delay_s", DEFAULT_LABEL_DELAY_S),
        )


def _number_or(d: Mapping[str, Any], key: str, default: float) -> float:
    """An optional finite number."""
    return wire.number(d, key, "scenario") if key in d else default


def _default_name(d: Mapping[str, Any]) -> str:
    """A file scenario may leave out its name: the data file's stem names the run."""
    dataset = d.get("dataset")
    if isinstance(dataset, str) and dataset and not dataset.startswith(BUILTIN_PREFIX):
        return Path(dataset).stem or "scenario"
    raise ValidationError("scenario.name", "is required")


def _dataset(spec: str, base_dir: Path | None) -> str:
    """builtin:<name> as it is; a file path made absolute against the scenario file's folder."""
    if spec.startswith(BUILTIN_PREFIX):
        return spec
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)


def _texts(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """An optional list of non-empty strings."""
    if key not in d:
        return ()
    items = wire.sequence(d, key, "scenario")
    bad = [item for item in items if not isinstance(item, str) or not item]
    if bad:
        raise ValidationError(f"scenario.{key}", f"expected non-empty strings, got {bad[0]!r}")
    return tuple(items)


def _rows(d: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """An optional list of row indices (integers >= 0; booleans are not integers here)."""
    if key not in d:
        return ()
    items = wire.sequence(d, key, "scenario")
    bad = [item for item in items if isinstance(item, bool) or not isinstance(item, int) or item < 0]
    if bad:
        raise ValidationError(f"scenario.{key}", f"expected row indices (integers >= 0), got {bad[0]!r}")
    return tuple(items)


def _drift(item: object, index: int) -> DriftEvent:
    where = f"scenario.drift[{index}]"
    d = wire.mapping(item, where)
    wire.only_keys(d, {"kind", "at_s", "share", "magnitude"}, where)
    try:
        return DriftEvent(
            kind=wire.text(d, "kind", where),
            at_s=wire.number(d, "at_s", where),
            share=wire.number(d, "share", where) if "share" in d else 1.0,
            magnitude=wire.number(d, "magnitude", where),
        )
    except ValidationError as exc:
        raise ValidationError(exc.field.replace("drift[]", where), exc.message) from exc


def _bad_candidate(item: object, index: int) -> BadCandidate:
    where = f"scenario.bad_candidates[{index}]"
    d = wire.mapping(item, where)
    wire.only_keys(d, {"kind", "at_s"}, where)
    try:
        return BadCandidate(kind=wire.text(d, "kind", where), at_s=wire.number(d, "at_s", where))
    except ValidationError as exc:
        raise ValidationError(exc.field.replace("bad_candidates[]", where), exc.message) from exc


BUILT_IN: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "drift": {
            "name": "drift",
            "dataset": "builtin:digits",
            "initial_rows": 900,
            "devices": 5,
            "duration_s": 3600.0,
            "requests_per_s": 1.5,
            "drift": [{"kind": "shift", "at_s": 900.0, "share": 1.0, "magnitude": 1.5}],
            "samplers": {"drifted": 0.06, "low_confidence": 0.3, "random": 0.002},
            "retraining": {
                "min_new_labels": 400,
                "drift_for_s": 480.0,
                "min_labels_on_drift": 140,
                "cooldown_s": 7200.0,
            },
        },
        "fleet-day": {
            "name": "fleet-day",
            "dataset": "builtin:digits",
            "initial_rows": 900,
            "devices": 1000,
            "duration_s": 86_400.0,
            "requests_per_s": 1 / 60,
            "step_s": 600.0,
            "forward_interval_s": 1800.0,
            "canary_devices": 20,
            "drift": [{"kind": "shift", "at_s": 28_800.0, "share": 1.0, "magnitude": 1.5}],
            "outages": [
                {"kind": "partition", "scope": "fleet", "from_s": 57_600.0, "to_s": 64_800.0},
                {
                    "kind": "partition",
                    "scope": "share",
                    "share": 0.05,
                    "from_s": 18_000.0,
                    "to_s": 25_200.0,
                    "flap_s": 1200.0,
                },
                {"kind": "restart", "from_s": 72_000.0, "to_s": 72_600.0},
            ],
            "bad_candidates": [{"kind": "inaccurate", "at_s": 7200.0}, {"kind": "tampered", "at_s": 14_400.0}],
            "samplers": {"drifted": 0.02, "low_confidence": 0.3, "random": 0.001},
            "retraining": {
                "min_new_labels": 50_000,
                "drift_for_s": 3600.0,
                "min_labels_on_drift": 400,
                "cooldown_s": 86_400.0,
            },
            "device_config": {
                "healthIntervalSeconds": 3600.0,
                "healthMinIntervalSeconds": 1800.0,
                "driftWindow": 360,
                "driftMinRows": 240,
                "sampleBytesPerDay": 51_200,
            },
        },
    }
)
"""Named scenarios for `edgeloop demo --scenario NAME` (a path to a JSON or YAML file works too)."""


def built_in(name: str) -> Scenario:
    """A named built-in scenario, or a ValidationError listing the names there are."""
    if name not in BUILT_IN:
        raise ValidationError(
            "scenario", f"{name!r} is not a built-in scenario; expected one of {sorted(BUILT_IN)} or a file"
        )
    return Scenario.from_dict(BUILT_IN[name])
