"""ECDSA P-256 verification of a model's manifest against the public key in the component configuration."""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from edgeloop.core.errors import ConfigError, IntegrityError, NotFoundError
from edgeloop.core.manifest import MANIFEST_FILE
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE, decode_signature, encode_signature, public_key_der


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    """The configured key, refused unless it is an EC public key on P-256 (what KMS ECC_NIST_P256 gives)."""
    try:
        key = load_der_public_key(public_key_der(pem))
    except ValueError as exc:
        raise ConfigError("modelPublicKey", f"not a readable public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("modelPublicKey", "must be an ECDSA P-256 (secp256r1) public key")
    return key


def verify_manifest_signature(model_dir: Path, public_key_pem: str) -> None:
    """Refuse a model folder whose manifest.json is unsigned or not signed by the configured key."""
    key = load_public_key(public_key_pem)
    try:
        manifest = (model_dir / MANIFEST_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(f"no {MANIFEST_FILE} in {model_dir}") from exc
    try:
        signature = (model_dir / MANIFEST_SIGNATURE_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise IntegrityError(
            f"unsigned: no {MANIFEST_SIGNATURE_FILE} in {model_dir} and modelPublicKey is set"
        ) from exc
    try:
        key.verify(decode_signature(signature), manifest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise IntegrityError(f"{MANIFEST_SIGNATURE_FILE} does not verify {MANIFEST_FILE} with modelPublicKey") from exc


def sign_manifest(manifest: bytes, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The signature file's content for manifest bytes: a local stand-in for KMS Sign (tests, local stack)."""
    return encode_signature(private_key.sign(manifest, ec.ECDSA(hashes.SHA256())))
