"""Manifest-signing port on an AWS KMS asymmetric key (ECC_NIST_P256, SIGN_VERIFY).

The in-memory fake of this port needs an ECDSA implementation, which the Lambda runtime lacks, so it
lives with the tests (tests/support.py `LocalKeySigner`); both pass tests/cloud/test_cloud_signing.py.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.errors import SigningError
from edgeloop.core.signing import SIGNING_ALGORITHM, SIGNING_KEY_SPEC, encode_signature, public_key_pem

KMS_RAW_MESSAGE_LIMIT = 4096
"""KMS Sign takes at most 4096 bytes with MessageType RAW; longer manifests are signed as their SHA-256."""


class ManifestSigner(Protocol):
    """Signs manifest bytes so a device holding the public key can tell they are ours.

    `sign` returns the content of manifest.json.sig (base64 DER ECDSA P-256 / SHA-256 over the exact
    bytes) and raises SigningError when the key cannot sign; `public_key_pem` is the key devices get
    as modelPublicKey. `key_id` names the key in logs and errors.
    """

    key_id: str

    def sign(self, manifest: bytes) -> bytes: ...

    def public_key_pem(self) -> str: ...


class KmsSigner:
    """ManifestSigner on KMS; the private key never leaves KMS."""

    def __init__(self, kms: Any, key_id: str, *, raw_message_limit: int | None = KMS_RAW_MESSAGE_LIMIT) -> None:
        """`raw_message_limit=None` sends every message RAW: only for moto, which signs DIGEST messages as RAW."""
        self._kms = kms
        self.key_id = key_id
        self._raw_limit = raw_message_limit

    def sign(self, manifest: bytes) -> bytes:
        """ECDSA_SHA_256 over the manifest: RAW when KMS allows it, else its SHA-256 as DIGEST (same signature)."""
        raw = self._raw_limit is None or len(manifest) <= self._raw_limit
        message, message_type = (manifest, "RAW") if raw else (hashlib.sha256(manifest).digest(), "DIGEST")
        try:
            response = self._kms.sign(
                KeyId=self.key_id, Message=message, MessageType=message_type, SigningAlgorithm=SIGNING_ALGORITHM
            )
        except AWS_ERRORS as exc:
            raise SigningError(
                f"KMS key {self.key_id} cannot sign the manifest ({error_code(exc) or exc}): {exc}"
            ) from exc
        return encode_signature(bytes(response["Signature"]))

    def public_key_pem(self) -> str:
        """The key's public half as PEM, refused unless it is an ECC_NIST_P256 signing key."""
        try:
            response = self._kms.get_public_key(KeyId=self.key_id)
        except AWS_ERRORS as exc:
            raise SigningError(f"cannot read the public key of KMS key {self.key_id}: {exc}") from exc
        spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")  # the older name of the same field
        usage = response.get("KeyUsage")
        if spec != SIGNING_KEY_SPEC or usage != "SIGN_VERIFY":
            raise SigningError(
                f"KMS key {self.key_id} is {spec}/{usage}; manifests need {SIGNING_KEY_SPEC}/SIGN_VERIFY"
            )
        return public_key_pem(bytes(response["PublicKey"]))
