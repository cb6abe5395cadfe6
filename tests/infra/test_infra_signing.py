"""The signing unit: the manifest key, and which handlers may sign or read its public key."""

from __future__ import annotations

from typing import Any

from templates import as_list, function_props, logical_id, of_type, statements_of_role

from edgeloop.core.settings import ENV_SIGNING_KEY_ID
from edgeloop.core.signing import SIGNING_KEY_SPEC


def test_the_signing_key_is_an_ecc_p256_sign_verify_key_that_is_kept(synthesized: Any) -> None:
    keys = of_type(synthesized.template, "AWS::KMS::Key")
    signing = keys[logical_id(synthesized, synthesized.stack.signing.key)]
    assert len(keys) == 2
    assert (signing["Properties"]["KeySpec"], signing["Properties"]["KeyUsage"]) == (SIGNING_KEY_SPEC, "SIGN_VERIFY")
    assert signing["DeletionPolicy"] == "Retain"


def _key_grants(synthesized: Any, role: Any, key: Any) -> set[str]:
    role_id, key_id = logical_id(synthesized, role), logical_id(synthesized, key)
    return {
        action
        for s in statements_of_role(synthesized.template, role_id)
        if s["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
        for action in as_list(s["Action"])
    }


def test_only_training_completed_may_sign_and_only_model_approved_may_read_the_public_key(synthesized: Any) -> None:
    stack = synthesized.stack
    key = stack.signing.key
    assert _key_grants(synthesized, stack.training_completed.handler.role, key) == {"kms:Sign"}
    assert _key_grants(synthesized, stack.model_approved.handler.role, key) == {"kms:GetPublicKey"}
    assert _key_grants(synthesized, stack.rollout_controller.handler.role, key) == {"kms:GetPublicKey"}
    assert _key_grants(synthesized, stack.training_launcher.handler.role, key) == set()
    assert _key_grants(synthesized, stack.health_ingest.handler.role, key) == set()
    for name in ("training_completed", "model_approved", "rollout_controller"):
        env = function_props(synthesized.template, f"{name}.handler")["Environment"]["Variables"]
        assert env[ENV_SIGNING_KEY_ID] == {"Fn::GetAtt": [logical_id(synthesized, key), "Arn"]}
