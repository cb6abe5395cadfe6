"""ECDSA P-256 verification of a model manifest, with keys generated here (KMS signs the same way)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgeloop.core.errors import ConfigError, IntegrityError, NotFoundError
from edgeloop.core.manifest import MANIFEST_FILE
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE, decode_signature
from edgeloop.device.signing import load_public_key, sign_manifest, verify_manifest_signature

if TYPE_CHECKING:
    from conftest import ModelDirFactory


def pem_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def test_a_signed_manifest_verifies(
    make_model_dir: ModelDirFactory, sign_model_dir: Callable[[Path], Path], public_key_pem: str
) -> None:
    folder = sign_model_dir(make_model_dir(1))

    verify_manifest_signature(folder, public_key_pem)


def test_the_signature_file_is_base64_der_as_kms_returns_it(
    make_model_dir: ModelDirFactory, signing_key: ec.EllipticCurvePrivateKey, public_key_pem: str
) -> None:
    folder = make_model_dir(1)
    der = signing_key.sign((folder / MANIFEST_FILE).read_bytes(), ec.ECDSA(hashes.SHA256()))
    (folder / MANIFEST_SIGNATURE_FILE).write_text(base64.b64encode(der).decode())

    verify_manifest_signature(folder, public_key_pem)
    assert decode_signature(sign_manifest(b"x", signing_key))[0] == 0x30


def test_one_changed_manifest_byte_fails(
    make_model_dir: ModelDirFactory, sign_model_dir: Callable[[Path], Path], public_key_pem: str
) -> None:
    folder = sign_model_dir(make_model_dir(1))
    manifest = folder / MANIFEST_FILE
    manifest.write_text(manifest.read_text().replace("2026-11-01", "2026-11-02"))

    with pytest.raises(IntegrityError, match="does not verify"):
        verify_manifest_signature(folder, public_key_pem)


def test_a_signature_by_another_key_fails(
    make_model_dir: ModelDirFactory, sign_model_dir: Callable[[Path], Path]
) -> None:
    folder = sign_model_dir(make_model_dir(1))

    with pytest.raises(IntegrityError, match="does not verify"):
        verify_manifest_signature(folder, pem_of(ec.generate_private_key(ec.SECP256R1())))


def test_a_missing_signature_fails_when_a_key_is_configured(
    make_model_dir: ModelDirFactory, public_key_pem: str
) -> None:
    with pytest.raises(IntegrityError, match=f"unsigned: no {MANIFEST_SIGNATURE_FILE}"):
        verify_manifest_signature(make_model_dir(1), public_key_pem)


def test_a_garbled_signature_file_fails(make_model_dir: ModelDirFactory, public_key_pem: str) -> None:
    folder = make_model_dir(1)
    (folder / MANIFEST_SIGNATURE_FILE).write_text("not base64 at all!")

    with pytest.raises(IntegrityError, match="not base64"):
        verify_manifest_signature(folder, public_key_pem)


def test_a_folder_without_a_manifest_is_not_found(tmp_path: Path, public_key_pem: str) -> None:
    with pytest.raises(NotFoundError, match=MANIFEST_FILE):
        verify_manifest_signature(tmp_path, public_key_pem)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "P-256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), "P-256"),
    ],
    ids=["p384", "rsa"],
)
def test_only_a_p256_public_key_is_accepted(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_public_key(pem_of(key))


def test_a_pem_that_is_not_a_key_is_refused() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"

    with pytest.raises(ConfigError, match="modelPublicKey"):
        load_public_key(pem)
