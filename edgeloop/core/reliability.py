"""The model's reliability table: how often it was wrong on its holdout, per band of its own top-1 confidence.

The training job writes it into the manifest baseline (its holdout, per band); the cloud's calibrated
detector (edgeloop.core.calibrated) reads it as "under no change, an answer given at confidence c is wrong
with probability q0(c)". Bands are half-open [edges[i-1], edges[i]); the first starts at 0, the last ends at 1.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ManifestError

RELIABILITY_KEYS = frozenset({"edges", "rows", "errors"})
MAX_BANDS = 64
"""More bands than this is not a small table (and a holdout of a few hundred rows could not fill them)."""


@dataclass(frozen=True)
class Reliability:
    """Holdout rows and wrong answers per confidence band: the version's own calibration."""

    edges: tuple[float, ...]
    """Inner band edges, strictly ascending in (0, 1)."""
    rows: tuple[int, ...]
    errors: tuple[int, ...]

    def __post_init__(self) -> None:
        where = "baseline.reliability"
        if len(self.edges) + 1 > MAX_BANDS:
            raise ManifestError(f"{where}.edges", f"at most {MAX_BANDS - 1} edges, got {len(self.edges)}")
        ascending = all(a < b for a, b in zip(self.edges, self.edges[1:], strict=False))
        if any(not 0.0 < e < 1.0 for e in self.edges) or not ascending:
            raise ManifestError(f"{where}.edges", "must be strictly ascending inside (0, 1)")
        if len(self.rows) != len(self.edges) + 1 or len(self.errors) != len(self.rows):
            raise ManifestError(f"{where}.rows", "rows and errors need len(edges) + 1 values each")
        for r, e in zip(self.rows, self.errors, strict=True):
            if isinstance(r, bool) or isinstance(e, bool) or not isinstance(r, int) or not isinstance(e, int):
                raise ManifestError(f"{where}.rows", "rows and errors must be integers")
            if not 0 <= e <= r:
                raise ManifestError(f"{where}.errors", f"{e} errors of {r} rows")
        if sum(self.rows) < 1:
            raise ManifestError(f"{where}.rows", "the table describes no rows")

    def band(self, confidence: float) -> int:
        """The band a confidence falls in (values outside [0, 1] fall in the first or last)."""
        return bisect.bisect_right(self.edges, confidence)

    @property
    def total_rows(self) -> int:
        """Holdout rows the table describes."""
        return sum(self.rows)

    @property
    def total_errors(self) -> int:
        """Wrong answers among them."""
        return sum(self.errors)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as the manifest stores it."""
        return {"edges": list(self.edges), "rows": list(self.rows), "errors": list(self.errors)}

    @classmethod
    def from_dict(cls, data: object, where: str = "baseline.reliability") -> Reliability:
        """Parse a table, refusing anything that is not one (ManifestError naming the field)."""
        if not isinstance(data, Mapping):
            raise ManifestError(where, f"expected an object, got {type(data).__name__}")
        wire.only_keys(data, set(RELIABILITY_KEYS), where)
        missing = sorted(RELIABILITY_KEYS - set(data))
        if missing:
            raise ManifestError(where, f"missing key(s) {missing}")
        edges = wire.sequence(data, "edges", where)
        if any(isinstance(e, bool) or not isinstance(e, int | float) for e in edges):
            raise ManifestError(f"{where}.edges", "must be a list of numbers")
        rows, errors = (wire.sequence(data, key, where) for key in ("rows", "errors"))
        return cls(tuple(float(e) for e in edges), tuple(rows), tuple(errors))
