"""The privacy filter: drop, hash with the fleet salt, coarsen, Laplace noise; raw only when allowed."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.privacy import (
    HASH_HEX_CHARS,
    HASH_SCHEME,
    SENSITIVITY_BASIS,
    AppliedPrivacy,
    PrivacyPolicy,
    check_salt,
    coarsened,
    filter_features,
    hash_value,
    laplace_scale,
)

SALT = "fleet-salt-0123456789"
NAMES = ("a", "b", "c", "d")
VALUES = (1.0, 2.5, 7.3, 15.9)
BOUNDS = (0.0, 16.0)


def released(policy: PrivacyPolicy, noise: tuple[float, ...] | None = None) -> dict[str, Any]:
    return filter_features(policy, NAMES, VALUES, salt=SALT, noise=noise, bounds=BOUNDS)


@pytest.mark.parametrize(
    ("policy", "noise", "expected"),
    [
        pytest.param(PrivacyPolicy(), None, {}, id="default-releases-nothing"),
        pytest.param(PrivacyPolicy(allow_raw=True), None, dict(zip(NAMES, VALUES, strict=True)), id="raw-allowed"),
        pytest.param(
            PrivacyPolicy(allow_raw=True, drop=("b", "d")), None, {"a": 1.0, "c": 7.3}, id="raw-allowed-some-dropped"
        ),
        pytest.param(PrivacyPolicy(coarsen=(("c", 2.0),)), None, {"c": 8.0}, id="only-coarsened-leave"),
        pytest.param(
            PrivacyPolicy(allow_raw=True, coarsen=(("a", 4.0), ("b", 0.1))),
            None,
            {"a": 0.0, "b": 2.5, "c": 7.3, "d": 15.9},
            id="coarsen-on-a-grid",
        ),
        pytest.param(
            PrivacyPolicy(laplace_epsilon=1.0),
            (0.5, -3.0, 0.0, 1.0),
            {"a": 1.5, "b": 0.0, "c": 7.3, "d": 16.0},
            id="noised-leave-clamped-to-the-input-range",
        ),
        pytest.param(
            PrivacyPolicy(laplace_epsilon=1.0, coarsen=(("c", 1.0),), drop=("a",)),
            (0.5, 0.25, 0.4, 0.0),
            {"b": 2.75, "c": 8.0, "d": 15.9},
            id="noise-then-coarsen",
        ),
    ],
)
def test_filter_features(policy: PrivacyPolicy, noise: tuple[float, ...] | None, expected: dict[str, Any]) -> None:
    assert released(policy, noise) == expected


def test_hashed_features_leave_as_salted_pseudonyms() -> None:
    out = released(PrivacyPolicy(hash=("a",)))
    expected = hmac.new(SALT.encode(), b"a\x001.0", hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]
    assert out == {"a": expected}
    assert hash_value(SALT, "a", 1) == hash_value(SALT, "a", 1.0) == expected  # 1 and 1.0 are one value
    assert hash_value(SALT, "b", 1.0) != expected  # the same value in another field is another pseudonym
    assert hash_value("another-fleet-salt!!", "a", 1.0) != expected


def test_noise_is_required_when_epsilon_is_set() -> None:
    with pytest.raises(ValidationError, match=r"privacy\.noise"):
        released(PrivacyPolicy(laplace_epsilon=0.5))
    with pytest.raises(ValidationError, match=r"privacy\.noise"):
        released(PrivacyPolicy(laplace_epsilon=0.5), (0.0,))


def test_noise_is_ignored_without_epsilon() -> None:
    assert released(PrivacyPolicy(allow_raw=True), (5.0, 5.0, 5.0, 5.0)) == dict(zip(NAMES, VALUES, strict=True))


@pytest.mark.parametrize(
    ("value", "step", "expected"), [(7.3, 2.0, 8.0), (0.3, 0.1, 0.3), (-2.6, 0.5, -2.5), (5.0, 10.0, 0.0)]
)
def test_coarsened(value: float, step: float, expected: float) -> None:
    assert coarsened(value, step) == expected


def test_laplace_scale_is_sensitivity_over_epsilon() -> None:
    assert laplace_scale(16.0, 0.5) == 32.0


@pytest.mark.parametrize(
    ("config", "field", "match"),
    [
        pytest.param({"drop": ["a"], "hash": ["a"]}, "privacy.hash", "already under privacy.drop", id="two-rules"),
        pytest.param({"coarsen": {"a": 0}}, "privacy.coarsen.a", "step", id="zero-step"),
        pytest.param({"coarsen": {"a": "big"}}, "privacy.coarsen.a", "number", id="text-step"),
        pytest.param({"laplaceEpsilon": 0}, "privacy.laplaceEpsilon", "outside", id="zero-epsilon"),
        pytest.param({"laplaceEpsilon": 1000}, "privacy.laplaceEpsilon", "outside", id="huge-epsilon"),
        pytest.param({"laplaceEpsilon": "1"}, "privacy.laplaceEpsilon", "number", id="text-epsilon"),
        pytest.param({"allowRaw": "yes"}, "privacy.allowRaw", "true or false", id="allow-raw-text"),
        pytest.param({"drop": "a"}, "privacy.drop", "list of feature names", id="drop-not-a-list"),
        pytest.param({"drop": [""]}, "privacy.drop", "list of feature names", id="empty-name"),
        pytest.param({"dropp": ["a"]}, "privacy", "unknown key", id="unknown-key"),
        pytest.param([], "privacy", "expected an object", id="not-an-object"),
    ],
)
def test_bad_policies_are_named(config: Any, field: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        PrivacyPolicy.from_config(config)
    assert info.value.field == field


def test_policy_config_round_trip() -> None:
    config = {"allowRaw": True, "drop": ["a"], "hash": ["b"], "coarsen": {"c": 0.5}, "laplaceEpsilon": 2}
    policy = PrivacyPolicy.from_config(config)
    assert policy == PrivacyPolicy(True, ("a",), ("b",), (("c", 0.5),), 2.0)
    assert PrivacyPolicy.from_config(policy.to_config()) == policy
    assert "laplaceEpsilon" not in PrivacyPolicy().to_config()
    assert policy.named == ("a", "b", "c")


def test_a_policy_naming_a_missing_feature_is_refused_with_the_feature() -> None:
    policy = PrivacyPolicy(hash=("serial_no",))
    with pytest.raises(ConfigError, match="'serial_no' is not in the model's input") as info:
        policy.check_schema(NAMES)
    assert info.value.field == "privacy.hash"
    PrivacyPolicy(drop=("a",), coarsen=(("d", 1.0),)).check_schema(NAMES)


def test_hashing_needs_a_long_salt_and_never_echoes_it() -> None:
    with pytest.raises(ConfigError, match="at least 16") as info:
        check_salt(PrivacyPolicy(hash=("a",)), "short-salt")
    assert "short-salt" not in str(info.value)
    check_salt(PrivacyPolicy(hash=("a",)), SALT)
    check_salt(PrivacyPolicy(), "")


@pytest.mark.parametrize(
    "applied",
    [
        AppliedPrivacy(PrivacyPolicy(), None),
        AppliedPrivacy(PrivacyPolicy(True, ("a",), ("b",), (("c", 0.5),), 0.5), 16.0),
    ],
    ids=["default", "everything"],
)
def test_applied_privacy_round_trip(applied: AppliedPrivacy) -> None:
    payload = applied.to_payload()
    assert AppliedPrivacy.from_payload(payload) == applied
    noised = applied.policy.laplace_epsilon is not None
    assert payload["sensitivity_basis"] == (SENSITIVITY_BASIS if noised else None)
    assert payload["hash_scheme"] == (HASH_SCHEME if applied.policy.hash else None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"allow_raw": 1}, "sample.privacy.allow_raw", id="allow-raw-not-a-flag"),
        pytest.param({"sensitivity": None}, "sample.privacy.sensitivity", id="epsilon-without-sensitivity"),
        pytest.param({"laplace_epsilon": "1"}, "sample.privacy.laplace_epsilon", id="epsilon-text"),
        pytest.param({"dropped": [1]}, "sample.privacy.dropped", id="dropped-numbers"),
        pytest.param({"extra": 1}, "sample.privacy", id="unknown-key"),
    ],
)
def test_applied_privacy_refuses_bad_payloads(change: dict[str, Any], field: str) -> None:
    payload = {**AppliedPrivacy(PrivacyPolicy(laplace_epsilon=1.0), 16.0).to_payload(), **change}
    with pytest.raises(ValidationError) as info:
        AppliedPrivacy.from_payload(payload)
    assert info.value.field == field
