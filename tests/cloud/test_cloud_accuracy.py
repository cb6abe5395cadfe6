"""The cloud's accuracy estimate reads labelled random samples of one version, weighted by their inclusion."""

from __future__ import annotations

import pytest

from edgeloop.cloud.accuracy import labelled, sampled_accuracy, version_accuracy
from edgeloop.cloud.sample_ingest import MemorySampleCatalogue, SampleRef
from edgeloop.core.labels import Label
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.sample_payload import Sample

PLAIN = AppliedPrivacy(PrivacyPolicy(allow_raw=True), None)


def sample(seq: int, sampler: str, predicted: int, inclusion: float | None, version: int = 2) -> SampleRef:
    made = Sample(
        request_id=f"r-{seq}", model_name="m", model_version=version, sampler=sampler, label_index=predicted,
        label=str(predicted), confidence=0.9, margin=0.5, drifted=False, drift_score=None, features={},
        privacy=PLAIN, inclusion=inclusion,
    )  # fmt: skip
    return SampleRef("edge-dev-1", seq, "s3://b/samples/x", made)


def test_only_labelled_random_samples_of_the_version_count_each_for_what_it_stands_for() -> None:
    refs = [
        sample(0, "random", 1, 0.1),  # right, stands for 10
        sample(1, "random", 0, 0.5),  # wrong, stands for 2
        sample(2, "low_confidence", 0, 1.0),  # hard example: not in the estimate
        sample(3, "random", 0, None),  # no inclusion recorded (an older device): left out
        sample(4, "random", 0, 0.1, version=1),  # another version
        sample(5, "random", 0, 0.1),  # never labelled
    ]
    catalogue = MemorySampleCatalogue()
    for ref in refs:
        catalogue.add(ref)
        if ref.seq != 5:
            catalogue.record_label(Label("edge-dev-1", ref.seq, 1, "oracle"))

    pairs = labelled(refs, catalogue)

    assert len(pairs) == 5
    estimate = version_accuracy(pairs, 2)
    assert (estimate.samples, estimate.represented) == (2, pytest.approx(12.0))
    assert estimate.accuracy == pytest.approx(10 / 12)
    assert sampled_accuracy(pairs, 2) == pytest.approx(1 / 4)  # what counting every sample would say


def test_through_the_device_stage_and_budget_the_weighted_estimate_finds_the_served_accuracy() -> None:
    """A simulated stream through the real sampling stage and share budget: calm, then a suspected change where
    the model is worse and the random rate is boosted. Hard examples alone, and random samples counted as they
    come, both misjudge the accuracy served; the weighted random samples do not."""
    from types import SimpleNamespace

    import numpy as np
    from support import FakeClock

    from edgeloop.core.manifest import InputSchema
    from edgeloop.core.settings import DeviceConfig
    from edgeloop.device.sample_stage import SampleStage
    from edgeloop.device.sample_taker import SampleTaker

    schema = InputSchema("input", "float32", ("a", "b"), 0.0, 1.0)
    model = SimpleNamespace(manifest=SimpleNamespace(input=schema, model_name="m", labels=("x", "y")), version=2)
    config = DeviceConfig(
        samplers=(("random", 0.0), ("low_confidence", 0.6)), privacy=PrivacyPolicy(allow_raw=True),
        sampleBudgetShare=0.1, sampleBytesPerDay=1024**3,
    )  # fmt: skip
    rng = np.random.default_rng(7)
    stage = SampleStage(config, model, rng)  # type: ignore[arg-type]
    taker = SampleTaker(config.sampleBytesPerDay, FakeClock())
    truth: dict[str, int] = {}
    correct_served, served, taken = 0, 0, []
    for batch in range(2400):
        drifted = batch >= 1500
        confidence = rng.uniform(0.5, 1.0, 50)
        correct = rng.random(50) < (confidence - 0.45 if drifted else confidence)
        predicted = rng.integers(0, 2, 50)
        correct_served, served = correct_served + int(correct.sum()), served + 50
        rows = rng.uniform(0, 1, (50, 2))
        sampled = []
        for i, name in stage.pick_batch(confidence, 2 * confidence - 1, drifted):
            request = f"r-{batch}-{i}"
            truth[request] = int(predicted[i]) if correct[i] else 1 - int(predicted[i])
            sampled.append(
                (request, rows[i], int(predicted[i]), float(confidence[i]), float(2 * confidence[i] - 1), name)
            )
        taken += [Sample.from_payload(p) for p in taker.take(stage, sampled, None, drifted)]
    pairs = [(sample, truth[sample.request_id]) for sample in taken]
    accuracy = correct_served / served
    estimate = version_accuracy(pairs, 2)
    assert estimate.accuracy is not None
    assert estimate.standard_error is not None
    assert abs(estimate.accuracy - accuracy) < 3 * estimate.standard_error
    assert estimate.samples > 500
    random_only = sampled_accuracy([(s, t) for s, t in pairs if s.sampler == "random"], 2)
    hard_only = sampled_accuracy([(s, t) for s, t in pairs if s.sampler != "random"], 2)
    for biased in (random_only, hard_only):
        assert biased is not None
        assert abs(biased - accuracy) > 4 * estimate.standard_error  # where the weighted one is within 3
    assert taker.share.spent <= 0.1 * taker.share.raw_bytes
