"""The sampling stage: which inferences become SAMPLE records, and what of their inputs the privacy filter lets go.

The decision belongs to core.samplers; this module only makes it cheap. On the batch-1 path it is a few float
comparisons and at most two draws from Python's generator; on a micro-batch, one vectorized mask
finds the rows some sampler would take, and only those (few, by design) are named by
core.samplers.choose_sampler one by one.

Under a share budget (sampleBudgetShare, core.sample_budget) the random sampler's rate is the one the budget
pays for at a sample's wire price (its JSON size times the running compression ratio the taker hands over),
filling the bank, spending the surplus beyond it too, or boosted while the device's drift flag is up,
and never below the configured `random` parameter; the stage counts the readings it saw and estimates their
raw-equivalent bytes from the rows it sampled, so the taker can credit the budget, and each payload records the
probability its sampler took it with.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from edgeloop.core.privacy import AppliedPrivacy, filter_features, laplace_scale
from edgeloop.core.sample_budget import BudgetPolicy, raw_reading_bytes
from edgeloop.core.sample_payload import Sample
from edgeloop.core.samplers import SAMPLERS, SamplerSettings, SampleSignals, choose_sampler, payload_bytes
from edgeloop.core.settings import DeviceConfig
from edgeloop.core.share_budget import WIRE_PRIOR_RATIO
from edgeloop.device.onnx_model import LoadedModel

VectorSampler = Callable[[np.ndarray, np.ndarray, bool, np.ndarray, np.ndarray, float], np.ndarray]
"""A sampler over a batch: (confidences, margins, drifted, control draws, drift draws, parameter) -> row mask."""

VECTOR_SAMPLERS: Mapping[str, VectorSampler] = MappingProxyType(
    {
        "random": lambda c, m, d, u, v, p: u < p,
        "low_confidence": lambda c, m, d, u, v, p: c < p,
        "small_margin": lambda c, m, d, u, v, p: m < p,
        "drifted": lambda c, m, d, u, v, p: (v < p) & d,
    }
)
"""core.samplers.SAMPLERS over numpy columns (tests/device/test_device_sample_stage.py checks they agree)."""
assert tuple(VECTOR_SAMPLERS) == tuple(SAMPLERS), "the device vectorizes exactly the core's samplers"

CandidateRow = tuple[int, str]
"""(row in the micro-batch, the sampler that took it)."""


class SampleStage:
    """The configured samplers and privacy filter, bound to one model's input schema."""

    def __init__(self, config: DeviceConfig, model: LoadedModel, rng: np.random.Generator) -> None:
        schema = model.manifest.input
        config.privacy.check_schema(schema.features)  # ConfigError: the caller serves on, taking no samples
        self.model = model
        self.settings: SamplerSettings = config.samplers
        self._rng = rng
        self._draw = random.Random(int(rng.integers(2**63))).random
        self._salt = config.fleetSalt
        self._policy = config.privacy
        self._bounds = (schema.minimum, schema.maximum)
        epsilon = config.privacy.laplace_epsilon
        self._scale = None if epsilon is None else laplace_scale(schema.maximum - schema.minimum, epsilon)
        self._applied = AppliedPrivacy(config.privacy, None if epsilon is None else schema.maximum - schema.minimum)
        parameters = dict(config.samplers)
        self.budget_policy: BudgetPolicy = config.budget_policy
        self._random_floor = parameters.get("random", 0.0)
        self._has_random = "random" in parameters
        self._low_confidence = parameters.get("low_confidence", -1.0)
        self._small_margin = parameters.get("small_margin", -1.0)
        self._drifted_rate = parameters.get("drifted", 0.0)
        """VECTOR_SAMPLERS' thresholds as plain floats; an unconfigured sampler's can never fire."""
        self._last_batch = 1
        self.served = 0
        """Readings this stage has seen (each earns the share budget its raw-equivalent bytes)."""
        self._raw_total, self._raw_rows = 0, 0
        self._sample_total, self._sample_rows = 0, 0
        midpoint = [(schema.minimum + schema.maximum) / 2] * len(schema.features)
        self._raw_guess = raw_reading_bytes(midpoint)
        """Raw-equivalent bytes of a reading before any row was measured: a mid-range row of the schema's width."""
        self._rates = (self._random_floor, self._random_floor)
        self._sample_guess = 0
        self._effective: tuple[SamplerSettings, SamplerSettings] = (self.settings, self.settings)
        if self.budget_policy.share and self._has_random:
            probe = self._payload("probe", midpoint, 0, (0.5, 0.5, False, None), "low_confidence")
            self._sample_guess = payload_bytes(probe)
            self._retune()

    @property
    def raw_per_reading(self) -> float:
        """Raw-equivalent bytes of one reading: the mean over the rows sampled so far (a guess before any)."""
        return self._raw_total / self._raw_rows if self._raw_rows else self._raw_guess

    @property
    def sample_bytes(self) -> float:
        """Mean size of the sample payloads measured so far (a probe's size before any; 0 without a share)."""
        return self._sample_total / self._sample_rows if self._sample_rows else self._sample_guess

    @property
    def random_rates(self) -> tuple[float, float]:
        """The random sampler's rate while stable and while a change is suspected."""
        return self._rates

    def measured(self, size: int) -> None:
        """A sample payload's size, for the random rate the budget pays for (the taker measures each one)."""
        if self.budget_policy.share:
            self._sample_total += size
            self._sample_rows += 1

    def retune(
        self,
        random_balance: float | None = None,
        hard_balance: float | None = None,
        wire_ratio: float = WIRE_PRIOR_RATIO,
    ) -> None:
        """The random rates from what was measured so far and what the accounts hold (wire bytes); the taker calls
        it once a batch's payloads are built, so every payload records the rate its row was drawn at."""
        self._retune(random_balance, hard_balance, wire_ratio)

    def _retune(
        self,
        random_balance: float | None = None,
        hard_balance: float | None = None,
        wire_ratio: float = WIRE_PRIOR_RATIO,
    ) -> None:
        """The random rates from the budget, the reading sizes and sample prices seen so far and the balances."""
        if not (self.budget_policy.share and self._has_random):
            return
        size, raw, policy = self.sample_bytes * wire_ratio, self.raw_per_reading, self.budget_policy
        idle = hard_balance is not None and hard_balance >= policy.bank_samples * size  # hard examples are few
        balance = random_balance + (hard_balance or 0.0) if idle and random_balance is not None else random_balance
        batch, floor = self._last_batch, self._random_floor
        stable = policy.random_rate(raw, size, False, floor, balance=balance, batch=batch, hard_idle=idle)
        suspected = policy.random_rate(raw, size, True, floor, balance=balance, batch=batch, hard_idle=idle)
        self._rates = (stable, suspected)
        self._effective = (
            tuple((name, stable if name == "random" else p) for name, p in self.settings),
            tuple((name, suspected if name == "random" else p) for name, p in self.settings),
        )

    def inclusion(self, sampler: str, drifted: bool) -> float:
        """The probability the named sampler took an inference with, given its signals (core.estimates)."""
        if sampler == "random":
            return self._rates[drifted]
        if sampler == "drifted":
            return self._drifted_rate
        return 1.0

    def pick_row(self, confidence: float, margin: float, drifted: bool) -> str | None:
        """The sampler that takes one inference, or None (the batch-1 path: a few float comparisons).

        Only when some threshold fires are the signals built and core.samplers.choose_sampler asked to name it.
        """
        self.served += 1
        self._last_batch = 1
        rate = self._rates[drifted]
        control = self._draw() if rate else 1.0
        drift = self._draw() if drifted and self._drifted_rate else 1.0
        if (
            control < rate
            or confidence < self._low_confidence
            or margin < self._small_margin
            or drift < self._drifted_rate
        ):
            return choose_sampler(self._effective[drifted], SampleSignals(confidence, margin, drifted, control, drift))
        return None

    def pick_batch(self, confidences: np.ndarray, margins: np.ndarray, drifted: bool) -> list[CandidateRow]:
        """The rows of a micro-batch some sampler takes, each with its sampler's name."""
        n = (int(confidences.shape[0]),)
        self.served += n[0]
        self._last_batch = n[0]
        settings = self._effective[drifted]
        never = np.ones(n)  # a draw of 1 is never below a rate: no draw is made for an unconfigured sampler
        controls = self._rng.random(n) if self._rates[drifted] else never
        drifts = self._rng.random(n) if drifted and self._drifted_rate else never
        wanted = np.zeros(n, dtype=bool)
        for sampler, parameter in settings:
            wanted |= VECTOR_SAMPLERS[sampler](confidences, margins, drifted, controls, drifts, parameter)
        picked: list[CandidateRow] = []
        for i in np.flatnonzero(wanted).tolist():
            signals = SampleSignals(
                float(confidences[i]), float(margins[i]), drifted, float(controls[i]), float(drifts[i])
            )
            chosen = choose_sampler(settings, signals)
            if chosen is not None:
                picked.append((i, chosen))
        return picked

    def payload(
        self,
        request_id: str,
        row: np.ndarray,
        label_index: int,
        signals: tuple[float, float, bool, float | None],
        sampler: str,
    ) -> dict[str, Any]:
        """One SAMPLE payload: signals, and the row's features after the privacy filter."""
        values: list[float] = np.asarray(row, dtype=np.float64).reshape(-1).tolist()
        if self.budget_policy.share:  # the row's raw-equivalent size, for the budget's credit per reading
            self._raw_total += raw_reading_bytes(values)
            self._raw_rows += 1
        return self._payload(request_id, values, label_index, signals, sampler)

    def _payload(
        self,
        request_id: str,
        values: list[float],
        label_index: int,
        signals: tuple[float, float, bool, float | None],
        sampler: str,
    ) -> dict[str, Any]:
        confidence, margin, drifted, drift_score = signals
        noise = None if self._scale is None else self._rng.laplace(0.0, self._scale, len(values)).tolist()
        features = filter_features(
            self._policy, self.model.manifest.input.features, values, salt=self._salt, noise=noise, bounds=self._bounds
        )
        sample = Sample(
            request_id=request_id,
            model_name=self.model.manifest.model_name,
            model_version=self.model.version,
            sampler=sampler,
            label_index=label_index,
            label=self.model.manifest.labels[label_index],
            confidence=round(min(1.0, max(0.0, confidence)), 6),
            margin=round(min(1.0, max(0.0, margin)), 6),
            drifted=drifted,
            drift_score=None if drift_score is None else round(drift_score, 6),
            features=features,
            privacy=self._applied,
            inclusion=float(f"{self.inclusion(sampler, drifted):.6g}"),
        )
        return sample.to_payload()
