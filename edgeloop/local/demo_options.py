"""What a demo run is asked for, and its limits: light (no stack, no numpy), so `edgeloop demo --help` can name them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgeloop.core.errors import UsageError
from edgeloop.local.sim.scenario import BadKind

MAX_DEVICES = 100
"""The plain demo's fleet size limit: every device is a thread of this process (a scenario may step up to 1,000)."""
SUMMARY_FILE = "summary.json"
BAD_KINDS: tuple[BadKind, ...] = tuple(BadKind)
"""Every kind, in the order the demo rolls them out when none is named."""


def parse_kinds(values: object) -> tuple[BadKind, ...]:
    """Kinds by name (strings or BadKind), refusing an unknown one with the choices named."""
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise ValueError(f"expected a sequence of kinds, got {values!r}")
    kinds = []
    for value in values:
        try:
            kinds.append(BadKind(value))
        except ValueError:
            raise ValueError(f"unknown kind {value!r}; expected one of {', '.join(BAD_KINDS)}") from None
    return tuple(kinds)


@dataclass(frozen=True)
class DemoOptions:
    """What the user asked for."""

    devices: int = 5
    out: Path = Path("edgeloop-demo")
    model_name: str = "digits"
    seed: int = 0
    inject_bad_model: tuple[BadKind, ...] = ()
    """Also roll out these deliberately bad candidates (simulated), each of which must be stopped and reverted."""

    def __post_init__(self) -> None:
        if not 1 <= self.devices <= MAX_DEVICES:
            raise UsageError("--devices", f"must be between 1 and {MAX_DEVICES}, got {self.devices}")
        try:
            object.__setattr__(self, "inject_bad_model", parse_kinds(self.inject_bad_model))
        except ValueError as exc:
            raise UsageError("--inject-bad-model", str(exc)) from None
        check_output_dir(self.out)


def check_output_dir(out: Path) -> None:
    """Refuse an --out that could not take summary.json, before minutes of work are spent."""
    if out.exists() and not out.is_dir():
        raise UsageError("--out", f"{out} exists and is not a directory")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UsageError("--out", f"{existing} is not a directory, so {out} cannot be created under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError("--out", f"{existing} is not writable")
