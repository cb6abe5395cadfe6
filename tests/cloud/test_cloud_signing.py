"""One contract for every ManifestSigner (KMS on moto, a local key), and the cloud and device meeting.

The last tests publish a model through the real cloud path (S3, SageMaker and KMS on moto), fetch what
the component recipe lists into a folder as Greengrass would, and hand it to the device's verifier.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from support import FAKE_ONNX, LocalKeySigner, kms_signing_key, load_event, manifest_for, model_tarball

from edgeloop.cloud.artifacts import S3ArtifactStore
from edgeloop.cloud.fleet import MemoryFleetControl
from edgeloop.cloud.publish import publish_trained_model
from edgeloop.cloud.registry import SageMakerRegistry
from edgeloop.cloud.signing import KMS_RAW_MESSAGE_LIMIT, KmsSigner
from edgeloop.core.errors import IntegrityError, SigningError
from edgeloop.core.events import TrainingJobStateChange
from edgeloop.core.manifest import MANIFEST_FILE
from edgeloop.core.settings import CloudSettings
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE, decode_signature
from edgeloop.device.signing import verify_manifest_signature

GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgeloop-fleet"
ARCHIVE_URI = "s3://edgeloop-data/training-output/edgeloop-digits-20261124-120000/output/model.tar.gz"
MANIFEST = manifest_for(FAKE_ONNX).to_json().encode()


@pytest.fixture(params=["kms", "local"])
def signer(request: pytest.FixtureRequest) -> Any:
    if request.param == "local":
        return LocalKeySigner()
    kms = request.getfixturevalue("kms")
    return KmsSigner(kms, kms_signing_key(kms))


def _folder(tmp_path: Path, manifest: bytes, signature: bytes) -> Path:
    (tmp_path / MANIFEST_FILE).write_bytes(manifest)
    (tmp_path / MANIFEST_SIGNATURE_FILE).write_bytes(signature)
    return tmp_path


def test_a_signature_verifies_with_the_public_key_on_the_device(signer: Any, tmp_path: Path) -> None:
    signature = signer.sign(MANIFEST)
    decode_signature(signature)  # base64 of a DER ECDSA signature, as the core defines the file
    verify_manifest_signature(_folder(tmp_path, MANIFEST, signature), signer.public_key_pem())


def test_a_tampered_manifest_does_not_verify(signer: Any, tmp_path: Path) -> None:
    signature = signer.sign(MANIFEST)
    tampered = MANIFEST.replace(b'"accuracy": 0.97', b'"accuracy": 0.99')
    assert tampered != MANIFEST
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_manifest_signature(_folder(tmp_path, tampered, signature), signer.public_key_pem())


def test_another_keys_signature_does_not_verify(signer: Any, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_manifest_signature(_folder(tmp_path, MANIFEST, LocalKeySigner().sign(MANIFEST)), signer.public_key_pem())


@pytest.mark.parametrize(("spec", "usage"), [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), ("RSA_2048", "SIGN_VERIFY")])
def test_a_kms_key_of_the_wrong_kind_is_a_signing_error_naming_the_key(kms: Any, spec: str, usage: str) -> None:
    signer = KmsSigner(kms, kms_signing_key(kms, key_spec=spec, key_usage=usage))
    with pytest.raises(SigningError, match=signer.key_id):
        signer.sign(MANIFEST)
    if usage == "SIGN_VERIFY":
        with pytest.raises(SigningError, match="ECC_NIST_P256/SIGN_VERIFY"):
            signer.public_key_pem()


def test_an_unknown_kms_key_is_a_signing_error(kms: Any) -> None:
    with pytest.raises(SigningError, match="alias/missing"):
        KmsSigner(kms, "alias/missing").sign(MANIFEST)


def test_a_manifest_over_kmss_raw_limit_is_signed_as_its_digest(aws: None) -> None:
    import boto3

    kms = boto3.client("kms", region_name="us-east-1")
    big = b"{" + b" " * KMS_RAW_MESSAGE_LIMIT + b"}"
    der = bytes([0x30, 6, 2, 1, 1, 2, 1, 1])
    with Stubber(kms) as stub:
        stub.add_response(
            "sign",
            {"Signature": der, "KeyId": "k", "SigningAlgorithm": "ECDSA_SHA_256"},
            {
                "KeyId": "k",
                "Message": hashlib.sha256(big).digest(),
                "MessageType": "DIGEST",
                "SigningAlgorithm": "ECDSA_SHA_256",
            },
        )
        assert decode_signature(KmsSigner(kms, "k").sign(big)) == der


@pytest.fixture
def published(s3: Any, sagemaker: Any, kms: Any) -> tuple[Any, S3ArtifactStore, MemoryFleetControl, KmsSigner]:
    """A model published through training_completed's path with a KMS key on moto."""
    registry = SageMakerRegistry(sagemaker)
    registry.ensure_group("digits")
    store = S3ArtifactStore(s3)
    store.put(ARCHIVE_URI, model_tarball({MANIFEST_FILE: MANIFEST, "model.onnx": FAKE_ONNX}))
    fleet, signer = MemoryFleetControl(), KmsSigner(kms, kms_signing_key(kms))
    settings = CloudSettings("edgeloop-artifacts", GROUP_ARN, "0.1.0", None, "s3://edgeloop-data/training-output/")
    change = TrainingJobStateChange.from_event(load_event("training_job_completed"))
    deps = {"store": store, "registry": registry, "fleet": fleet, "settings": settings, "signer": signer}
    result = publish_trained_model(change, **deps)
    return result, store, fleet, signer


def _download_component(fleet: MemoryFleetControl, store: S3ArtifactStore, record: Any, dest: Path) -> Path:
    """What the nucleus does: fetch each recipe artifact by URI into the component's artifact folder."""
    recipe = fleet.get_component_recipe(record.component_name, record.component_version)
    dest.mkdir(parents=True)
    for artifact in recipe["Manifests"][0]["Artifacts"]:
        (dest / artifact["Uri"].rsplit("/", 1)[1]).write_bytes(store.get(artifact["Uri"]))
    return dest


def test_a_published_component_verifies_on_the_device(published: Any, tmp_path: Path) -> None:
    result, store, fleet, signer = published
    folder = _download_component(fleet, store, result.record, tmp_path / "artifacts")
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_FILE, MANIFEST_SIGNATURE_FILE, "model.onnx"]
    verify_manifest_signature(folder, signer.public_key_pem())


def test_a_tampered_published_manifest_is_refused_by_the_device(published: Any, tmp_path: Path) -> None:
    result, store, fleet, signer = published
    folder = _download_component(fleet, store, result.record, tmp_path / "artifacts")
    manifest = folder / MANIFEST_FILE
    manifest.write_bytes(manifest.read_bytes().replace(b'"fp32"', b'"fp32" ', 1))
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_manifest_signature(folder, signer.public_key_pem())
