"""Ed25519 signatures of model package archives, shared by the cloud (signs) and the device (verifies).

What is signed is the archive's SHA-256 digest (32 raw bytes), not the archive itself: Ed25519
needs the whole message in memory, and a package may be larger than a device's RAM, while the
digest is computed streaming. The job document carries the signature base64-encoded
(`signature`) beside the hex digest (`sha256`); the device recomputes the digest from the file it
downloaded, so a signature over a digest the document merely claims proves nothing by itself.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from system.errors import ConfigError, EdgesimError


class SignatureError(EdgesimError):
    """The signature does not match the package with the configured key."""


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the package signing key {path}: {exc}") from exc


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file, or a file holding the raw 32 bytes base64-encoded."""
    data = _read_key(path)
    try:
        if b"BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except ValueError as exc:
        raise ConfigError(f"{path} is not an Ed25519 public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def verify_digest(key: Ed25519PublicKey, signature: bytes, sha256_hex: str) -> None:
    try:
        key.verify(signature, bytes.fromhex(sha256_hex))
    except InvalidSignature:
        raise SignatureError("the Ed25519 signature does not match the package with this device's key") from None


def sign_digest(key: Ed25519PrivateKey, sha256_hex: str) -> str:
    """The base64 signature a job document carries for an archive with this digest."""
    return base64.b64encode(key.sign(bytes.fromhex(sha256_hex))).decode("ascii")


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key of a PEM file (PKCS#8, unencrypted), as `edgesim provision` writes it."""
    try:
        key = serialization.load_pem_private_key(_read_key(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
