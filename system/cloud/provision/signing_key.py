"""The project's package signing key: made once by provisioning, kept by the operator, pinned on devices.

A device on the `aws` profile installs only packages signed with the Ed25519 key whose public half
its config pins (`ota.signing_public_key`; system/signing.py). Provisioning makes that key pair the
first time (`--signing-key`, default `./edgesim-<project>-signing.key`, mode 0600) and reuses it on
every later run, so all devices of a project trust the one key that `edgesim pipeline run
--sign-key` signs with. Only the public key goes into a device bundle; the private key never does.
"""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from system.cloud.provision.bundle import write_private
from system.cloud.provision.report import StepLog
from system.errors import ConfigError
from system.signing import load_private_key, private_key_pem, public_key_pem


def default_signing_key(project: str) -> Path:
    return Path(f"edgesim-{project}-signing.key")


def ensure_signing_key(path: Path, bundle_folder: Path, log: StepLog) -> bytes:
    """Load the key at `path`, or make it; returns the public key (PEM) for the bundle."""
    if path.resolve().parent == bundle_folder.resolve():
        raise ConfigError(f"--signing-key {path} is inside the device bundle: the private key must stay off devices")
    if path.exists():
        mode = path.stat().st_mode
        if mode & 0o077:
            raise ConfigError(
                f"signing key {path} is open to other users (mode {stat.S_IMODE(mode):o}): chmod 600 it once you "
                "know it was not exposed, or make a new one (devices must then be given its public key)"
            )
        key = load_private_key(path)
        log("exists", "signing key", str(path), "Ed25519; reused")
    else:
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, private_key_pem(key).decode("ascii"))
        log("created", "signing key", str(path), "Ed25519, mode 0600: sign packages with edgesim pipeline --sign-key")
    return public_key_pem(key)
