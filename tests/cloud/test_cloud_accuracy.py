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
