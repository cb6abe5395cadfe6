"""The SAMPLE payload: a documented wire format the cloud's sample ingest parses with Sample.from_payload."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.core.errors import ValidationError
from edgeloop.core.privacy import AppliedPrivacy, PrivacyPolicy
from edgeloop.core.sample_payload import SAMPLE_SCHEMA_VERSION, Sample

NOISED = AppliedPrivacy(PrivacyPolicy(drop=("a",), hash=("b",), laplace_epsilon=0.5), 16.0)


def sample(**changes: Any) -> Sample:
    values: dict[str, Any] = {
        "request_id": "r-17",
        "model_name": "digits",
        "model_version": 3,
        "sampler": "low_confidence",
        "label_index": 7,
        "label": "7",
        "confidence": 0.41,
        "margin": 0.02,
        "drifted": True,
        "drift_score": 0.31,
        "features": {"b": "0123456789abcdef", "c": 4.25},
        "privacy": NOISED,
    }
    return Sample(**{**values, **changes})


@pytest.mark.parametrize(
    "original",
    [
        sample(),
        sample(drift_score=None, drifted=False, features={}, privacy=AppliedPrivacy(PrivacyPolicy(), None)),
        sample(sampler="random", inclusion=0.0125),
    ],
    ids=["noised", "default-policy", "random-with-inclusion"],
)
def test_payload_round_trip_through_json(original: Sample) -> None:
    payload = json.loads(json.dumps(original.to_payload()))
    assert payload["schema_version"] == SAMPLE_SCHEMA_VERSION
    assert Sample.from_payload(payload) == original


def test_the_payload_states_the_policy_and_epsilon() -> None:
    privacy = sample().to_payload()["privacy"]
    assert (privacy["laplace_epsilon"], privacy["sensitivity"], privacy["sensitivity_basis"]) == (
        0.5,
        16.0,
        "input_range",
    )
    assert (privacy["dropped"], privacy["hashed"], privacy["allow_raw"]) == (["a"], ["b"], False)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"schema_version": 2}, "sample.schema_version", id="other-version"),
        pytest.param({"sampler": "entropy"}, "sample.sampler", id="unknown-sampler"),
        pytest.param({"confidence": 1.5}, "sample.confidence", id="confidence-over-one"),
        pytest.param({"margin": "small"}, "sample.margin", id="margin-text"),
        pytest.param({"drifted": "yes"}, "sample.drifted", id="drifted-text"),
        pytest.param({"model_version": 0}, "sample.model_version", id="version-zero"),
        pytest.param({"request_id": ""}, "sample.request_id", id="empty-request-id"),
        pytest.param({"features": {"a": 1.0}}, "sample.features", id="dropped-feature-present"),
        pytest.param({"features": {"c": True}}, "sample.features.c", id="boolean-feature"),
        pytest.param({"features": [1.0]}, "sample.features", id="features-not-an-object"),
        pytest.param({"privacy": {"dropped": []}}, "sample.privacy.allow_raw", id="privacy-without-allow-raw"),
        pytest.param({"privacy": {"allow_raw": True, "coarsened": []}}, "sample.privacy.coarsened", id="bad-step"),
        pytest.param({"privacy": [True]}, "sample.privacy", id="privacy-not-an-object"),
        pytest.param({"inclusion": 0.0}, "sample.inclusion", id="inclusion-zero"),
        pytest.param({"inclusion": 1.5}, "sample.inclusion", id="inclusion-over-one"),
        pytest.param({"inclusion": "all"}, "sample.inclusion", id="inclusion-text"),
        pytest.param({"extra": 1}, "sample", id="unknown-key"),
    ],
)
def test_bad_payloads_are_refused_with_the_field(change: dict[str, Any], field: str) -> None:
    payload = {**sample().to_payload(), **change}
    with pytest.raises(ValidationError) as info:
        Sample.from_payload(payload)
    assert info.value.field == field


def test_a_default_policy_travels_as_one_entry_and_reads_back_whole() -> None:
    """Samples are paid for by the byte: the privacy object leaves out what holds its default."""
    plain = sample(privacy=AppliedPrivacy(PrivacyPolicy(allow_raw=True), None))
    payload = json.loads(json.dumps(plain.to_payload()))
    assert payload["privacy"] == {"allow_raw": True}
    assert Sample.from_payload(payload) == plain


def test_a_full_privacy_object_from_an_older_device_still_parses() -> None:
    plain = sample(privacy=AppliedPrivacy(PrivacyPolicy(allow_raw=True), None))
    payload = {**plain.to_payload(), "privacy": plain.privacy.to_payload()}
    assert Sample.from_payload(payload) == plain


JUNK: list[Any] = [None, True, 0, -1, 1.5, float("nan"), float("inf"), "", "x", [], {}, [1], {"a": 1}, 10**30]


@settings(max_examples=300, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_mangled_payloads_parse_or_are_refused_with_the_projects_error(rng: random.Random) -> None:
    """Outside bytes: any mix of missing keys and wrong values is a ValidationError, never another exception."""
    payload: dict[str, Any] = sample(sampler="random", inclusion=0.25).to_payload()
    payload["privacy"] = dict(payload["privacy"])
    for _ in range(rng.randrange(1, 4)):
        privacy = payload.get("privacy")
        target = privacy if isinstance(privacy, dict) and rng.random() < 0.3 else payload
        key = rng.choice([*target, "extra"])
        if rng.random() < 0.3:
            target.pop(key, None)
        else:
            target[key] = rng.choice(JUNK)
    try:
        parsed = Sample.from_payload(json.loads(json.dumps(payload)))
    except ValidationError:
        return
    assert parsed.inclusion is None or 0 < parsed.inclusion <= 1
