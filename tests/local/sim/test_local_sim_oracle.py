"""The oracle labeller: the scenario's true label for each sample it knows, None for the rest."""

from __future__ import annotations

from edgeloop.cloud.sample_ingest import Labeller, SampleRef
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.sample_payload import Sample
from edgeloop.local.sim.oracle import OracleLabeller

URI = "s3://edgeloop-data/samples/edge-dev-1/41-45.json.gz"


def sample(request_id: str) -> Sample:
    return Sample(
        request_id=request_id, model_name="digits", model_version=3, sampler="low_confidence", label_index=7,
        label="7", confidence=0.41, margin=0.02, drifted=True, drift_score=0.31, features={"c": 4.25},
        privacy=AppliedPrivacy(PrivacyPolicy(drop=("a",)), None),
    )  # fmt: skip


def test_the_oracle_labeller_knows_only_the_scenario_truth() -> None:
    refs = [SampleRef("edge-dev-1", i, URI, sample(f"r-{i}")) for i in range(3)]
    labeller: Labeller = OracleLabeller({"r-0": 4, "r-2": 9})
    assert labeller.label(refs) == [4, None, 9]


def test_the_oracle_labeller_reads_the_truth_as_it_grows() -> None:
    truth: dict[str, int] = {}
    labeller = OracleLabeller(truth)
    refs = [SampleRef("edge-dev-1", 0, URI, sample("r-0"))]
    assert labeller.label(refs) == [None]
    truth["r-0"] = 3
    assert labeller.label(refs) == [3]


def test_a_label_is_ready_only_label_delay_after_its_sample_reached_the_cloud() -> None:
    labeller = OracleLabeller({"r-0": 4, "r-1": 5, "r-2": 6}, delay_s=600.0)
    refs = [SampleRef("edge-dev-1", i, URI, sample(f"r-{i}")) for i in range(3)]
    labeller.offer(refs[:2], now_s=100.0)
    labeller.offer(refs[2:], now_s=400.0)
    assert labeller.due(699.0) == []
    assert [(ref.sample.request_id, label) for ref, label in labeller.due(700.0)] == [("r-0", 4), ("r-1", 5)]
    assert labeller.waiting == 1
    assert [label for _, label in labeller.due(1000.0)] == [6]
    assert labeller.due(5000.0) == []


def test_without_delay_a_label_is_ready_at_once_and_an_unknown_request_is_never_labelled() -> None:
    labeller = OracleLabeller({"r-0": 4})
    labeller.offer([SampleRef("edge-dev-1", i, URI, sample(f"r-{i}")) for i in range(2)], now_s=5.0)
    assert [label for _, label in labeller.due(5.0)] == [4]
    assert labeller.waiting == 0


def test_a_negative_delay_is_refused() -> None:
    import pytest

    from edgeloop.core.errors import ValidationError

    with pytest.raises(ValidationError, match="label_delay_s"):
        OracleLabeller({}, delay_s=-1.0)
