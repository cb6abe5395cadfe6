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
