"""The new-world gate's evidence, carried with a retrained candidate to the canary's confidence gate.

After a concept change the deployed version is confidently wrong, so a retrained version the gate showed to be
more accurate looks "less sure" to the canary. The evidence (both versions' accuracy and mean top-1 confidence
on the same recent labelled samples) travels as a training job tag, then registry metadata, then the Rollout,
and confidence_allowance widens the gate by the drop it predicts, never for a candidate it does not back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import ValidationError

EVIDENCE_TAG = "edgeloop:evidence"
"""The training job tag that holds the evidence's text (the registry metadata key is spelled the same)."""
_SHARES = ("candidate_accuracy", "deployed_accuracy", "candidate_confidence", "deployed_confidence")
_COUNTS = ("samples", "confidence_samples")
_KEYS = {"samples": "samples", "confidence_samples": "confidenceSamples", "deployed_version": "deployedVersion",
         "candidate_accuracy": "candidateAccuracy", "deployed_accuracy": "deployedAccuracy",
         "candidate_confidence": "candidateConfidence", "deployed_confidence": "deployedConfidence"}  # fmt: skip


@dataclass(frozen=True)
class GateEvidence:
    """Both versions' figures on the same recent labelled samples (the candidate's answers cross-fitted).

    Accuracies are the gate's, on every sample the deployed version answered; confidences are on the random share
    of those (confidence_samples), whose mean estimates what the canary measures on live traffic (hard examples
    are the ones the deployed version was unsure of).
    """

    samples: int
    confidence_samples: int
    deployed_version: int
    """The version the candidate was compared with: the allowance holds only against that baseline."""
    candidate_accuracy: float
    deployed_accuracy: float
    candidate_confidence: float
    deployed_confidence: float

    def __post_init__(self) -> None:
        for name in _COUNTS:
            if getattr(self, name) < 0:
                raise ValidationError(f"evidence.{_KEYS[name]}", f"must be >= 0, got {getattr(self, name)}")
        if self.deployed_version < 1:
            raise ValidationError("evidence.deployedVersion", f"must be >= 1, got {self.deployed_version}")
        for name in _SHARES:
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValidationError(f"evidence.{_KEYS[name]}", f"must be a finite number in [0, 1], got {value}")

    @property
    def backs_candidate(self) -> bool:
        """The samples say the candidate is more accurate than the version it would replace."""
        return self.samples > 0 and self.confidence_samples > 0 and self.candidate_accuracy > self.deployed_accuracy

    @property
    def expected_confidence_drop(self) -> float:
        """How much less sure the candidate was than the deployed version on the same samples (< 0: surer)."""
        return self.deployed_confidence - self.candidate_confidence

    def describe(self) -> str:
        """One line for the decision log: what the gate saw, against which version."""
        return (
            f"new-world gate: accuracy {self.candidate_accuracy:.3f} vs v{self.deployed_version} "
            f"{self.deployed_accuracy:.3f} on {self.samples} recent labels, confidence {self.candidate_confidence:.3f} "
            f"vs {self.deployed_confidence:.3f} on {self.confidence_samples} random ones"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (shares to 6 decimals: the text must fit a 256-character tag or metadata value)."""
        return {key: round(getattr(self, name), 6) if name in _SHARES else getattr(self, name)
                for name, key in _KEYS.items()}  # fmt: skip

    def to_text(self) -> str:
        """Compact JSON for a tag, a metadata value or a table attribute."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: object, where: str = "evidence") -> GateEvidence:
        """Parse the JSON form, refusing unknown keys, non-finite numbers and shares outside [0, 1]."""
        fields = wire.mapping(data, where)
        wire.only_keys(fields, set(_KEYS.values()), where)
        values: dict[str, Any] = {name: wire.integer(fields, _KEYS[name], where, minimum=0) for name in _COUNTS}
        values["deployed_version"] = wire.integer(fields, "deployedVersion", where, minimum=1)
        values |= {name: wire.number(fields, _KEYS[name], where) for name in _SHARES}
        try:
            return cls(**values)
        except ValidationError as exc:  # a share outside [0, 1]: named under the caller's where
            raise ValidationError(where + exc.field.removeprefix("evidence"), exc.message) from exc

    @classmethod
    def from_text(cls, text: str, where: str = "evidence") -> GateEvidence:
        """Parse the compact JSON text."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValidationError(where, f"is not JSON: {exc}") from exc
        return cls.from_dict(data, where)


def confidence_allowance(max_drop: float | None, evidence: GateEvidence | None, baseline: int | None) -> float | None:
    """The confidence drop the canary accepts: max_drop, plus the drop the evidence predicts when it backs the
    candidate against this very baseline version (a candidate without evidence keeps max_drop)."""
    if max_drop is None or evidence is None or not evidence.backs_candidate or evidence.deployed_version != baseline:
        return max_drop
    return max_drop + max(0.0, evidence.expected_confidence_drop)


def job_evidence(event: object) -> GateEvidence | None:
    """The evidence tag of a training job state change event (None when the job has none): a map or Key/Value list."""
    where = "event.detail.Tags"
    detail = wire.mapping(wire.mapping(event, "event").get("detail"), "event.detail")
    tags = detail.get("Tags") or {}
    if isinstance(tags, list):
        pairs = [wire.mapping(tag, f"{where}[]") for tag in tags]
        tags = {wire.text(tag, "Key", f"{where}[]"): wire.text(tag, "Value", f"{where}[]", allow_empty=True)
                for tag in pairs}  # fmt: skip
    text = wire.mapping(tags, where).get(EVIDENCE_TAG)
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValidationError(f"{where}.{EVIDENCE_TAG}", f"expected a string, got {text!r}")
    return GateEvidence.from_text(text, f"{where}.{EVIDENCE_TAG}")
