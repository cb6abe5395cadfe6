"""How a model manifest is signed: the file name, the algorithm and the encoding, defined once for cloud and device.

The signature file `manifest.json.sig` sits next to `manifest.json` in the model component's artifacts. It holds
base64 (ASCII; surrounding whitespace allowed) of the DER-encoded ECDSA P-256 / SHA-256 signature over the exact
bytes of manifest.json, which is what AWS KMS `Sign` returns for an ECC_NIST_P256 key with SigningAlgorithm
ECDSA_SHA_256 and MessageType RAW. The manifest carries every artifact's SHA-256, so one signature covers them all.
"""

from __future__ import annotations

import base64
import binascii
import re

from edgeloop.core.errors import ConfigError, IntegrityError

MANIFEST_SIGNATURE_FILE = "manifest.json.sig"
SIGNING_ALGORITHM = "ECDSA_SHA_256"
"""The KMS SigningAlgorithm (MessageType RAW: KMS hashes the manifest bytes itself)."""
SIGNING_KEY_SPEC = "ECC_NIST_P256"
"""The KMS KeySpec of the signing key; its public key goes to the device as modelPublicKey (PEM)."""
MAX_DER_SIGNATURE_BYTES = 72
"""A DER ECDSA P-256 signature is at most 72 bytes (two 33-byte INTEGERs and their headers)."""
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----(?P<body>[A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----")


def encode_signature(der: bytes) -> bytes:
    """The signature file's content for a DER signature (as KMS Sign returns it)."""
    _check_der(der)
    return base64.b64encode(der) + b"\n"


def decode_signature(text: bytes) -> bytes:
    """The DER signature in a signature file; anything but base64 of a DER SEQUENCE is refused."""
    try:
        der = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IntegrityError(f"{MANIFEST_SIGNATURE_FILE} is not base64 ({exc})") from exc
    _check_der(der)
    return der


def _check_der(der: bytes) -> None:
    """A DER SEQUENCE with a short-form length that covers exactly the rest of the bytes."""
    if not 8 <= len(der) <= MAX_DER_SIGNATURE_BYTES or der[0] != 0x30 or der[1] != len(der) - 2:
        raise IntegrityError(f"{MANIFEST_SIGNATURE_FILE} does not hold a DER ECDSA P-256 signature")


def public_key_der(pem: str) -> bytes:
    """The DER SubjectPublicKeyInfo inside a PEM public key (modelPublicKey); exactly one key block."""
    blocks = list(_PEM.finditer(pem))
    if len(blocks) != 1:
        raise ConfigError("modelPublicKey", f"expected one PEM PUBLIC KEY block, found {len(blocks)}")
    try:
        return base64.b64decode("".join(blocks[0]["body"].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("modelPublicKey", f"the PEM body is not base64 ({exc})") from exc


def public_key_pem(der: bytes) -> str:
    """PEM for the DER SubjectPublicKeyInfo KMS GetPublicKey returns: what devices take as modelPublicKey."""
    if not der or der[0] != 0x30:
        raise ConfigError("PublicKey", "is not a DER SubjectPublicKeyInfo")
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----"]) + "\n"
