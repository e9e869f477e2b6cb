"""The device bundle: a folder the device reads to connect to AWS IoT Core and get S3 credentials.

    <out>/                       mode 0700, created owner-only (never chmod'ed after the fact)
      device.json                the device config (system/edge/device_config.py) + an "aws" section
      certificate.pem.crt        the device certificate
      private.pem.key            its private key: AWS IoT returns it once, at creation, never again
      AmazonRootCA1.pem          only when `--root-ca` gave one (no download: this may run offline)
      ROOT-CA.txt                otherwise: where to get it
      package-signing.pub.pem    the project's package signing public key (signing_key.py)

Every file is written with mode 0600 from its first byte (os.open with the mode, then an atomic
rename), so no other user can read a key even for an instant. An existing folder that others can
read is refused rather than silently fixed, since the key may already have been exposed.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from system.cloud.provision.plan import ProvisionPlan
from system.cloud.provision.policies import CAPTURE_PREFIX, MODELS_PREFIX
from system.edge.telemetry import TOPIC_PREFIX
from system.errors import ConfigError

CONFIG_FILE = "device.json"
CERT_FILE = "certificate.pem.crt"
KEY_FILE = "private.pem.key"
ROOT_CA_FILE = "AmazonRootCA1.pem"
ROOT_CA_NOTE = "ROOT-CA.txt"
SIGNING_PUBLIC_FILE = "package-signing.pub.pem"
ROOT_CA_URL = "https://www.amazontrust.com/repository/AmazonRootCA1.pem"
UNKNOWN_ENDPOINT = "iot-data-ats-endpoint.invalid"  # RFC 2606: a name that never resolves


@dataclass(frozen=True)
class Endpoints:
    """DescribeEndpoint answers; None when the API did not answer (e.g. not allowed)."""

    data_ats: str | None = None
    credentials: str | None = None


def default_out(project: str, thing: str) -> Path:
    return Path(f"edgesim-{project}-{thing}")


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` with mode 0700, or accept an existing one only if no one else can read it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        mode = folder.stat().st_mode
        if not stat.S_ISDIR(mode):
            raise ConfigError(f"bundle folder {folder} exists and is not a folder") from None
        if mode & 0o077:
            raise ConfigError(
                f"bundle folder {folder} is open to other users (mode {stat.S_IMODE(mode):o}); "
                "use a new --out, or chmod 700 it once you know the key was not exposed"
            ) from None


def write_private(path: Path, data: str) -> None:
    """Write `data` to `path` atomically, the file being 0600 from its creation on."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def has_private_key(folder: Path) -> bool:
    return (folder / KEY_FILE).is_file()


def device_config(plan: ProvisionPlan, endpoints: Endpoints, *, signed: bool = True) -> dict[str, Any]:
    """The device's config: the keys of system/edge/device_config.py, plus what the aws device side needs."""
    config = {
        "thing_name": plan.thing_name,
        "root": "device-root",
        "mqtt": {
            "url": f"mqtts://{endpoints.data_ats or UNKNOWN_ENDPOINT}:8883",
            "client_id": plan.thing_name,  # the IoT policy allows no other client id
            "tls": {"ca": ROOT_CA_FILE, "cert": CERT_FILE, "key": KEY_FILE},
        },
        "object_store": {"endpoint_url": None, "region": plan.region},
        # credentials_endpoint and role_alias give the device S3 keys from its certificate
        # (system/adapters/iot_credentials.py); the rest records what was provisioned, for people.
        "aws": {
            "account_id": plan.account_id,
            "bucket": plan.bucket,
            "models_prefix": f"{MODELS_PREFIX}/",
            "capture_prefix": f"{CAPTURE_PREFIX}/",
            "telemetry_topic_prefix": f"{TOPIC_PREFIX}/{plan.thing_name}/telemetry/",
            "thing_group": plan.thing_group,
            "role_alias": plan.role_alias,
            "credentials_endpoint": endpoints.credentials,
            "iot_data_endpoint": endpoints.data_ats,
        },
    }
    if signed:  # the device installs only packages signed with the project's key
        config["ota"] = {"signing_public_key": SIGNING_PUBLIC_FILE}
    return config


def write_bundle(
    folder: Path,
    plan: ProvisionPlan,
    endpoints: Endpoints,
    certificate_pem: str,
    root_ca: Path | None = None,
    signing_public_pem: bytes | None = None,
) -> list[str]:
    """Write config, certificate, signing public key and root CA (or its note) into `folder`; returns notes.

    The private key is written by `write_private_key` the moment AWS returns it, not here.
    """
    ensure_private_dir(folder)
    signed = signing_public_pem is not None
    write_private(folder / CONFIG_FILE, json.dumps(device_config(plan, endpoints, signed=signed), indent=2) + "\n")
    write_private(folder / CERT_FILE, certificate_pem)
    if signing_public_pem is not None:
        write_private(folder / SIGNING_PUBLIC_FILE, signing_public_pem.decode("ascii"))
    notes: list[str] = []
    if root_ca is not None:
        try:
            write_private(folder / ROOT_CA_FILE, root_ca.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read --root-ca {root_ca}: {exc}") from exc
    elif not (folder / ROOT_CA_FILE).is_file():
        text = (
            f"The device verifies AWS IoT Core with Amazon Root CA 1. Download it (this tool never does)\n"
            f"from {ROOT_CA_URL}\ninto this folder as {ROOT_CA_FILE}, or rerun provisioning with --root-ca PATH.\n"
        )
        write_private(folder / ROOT_CA_NOTE, text)
        notes.append(f"no root CA in the bundle: download {ROOT_CA_URL} into {folder}/{ROOT_CA_FILE}")
    if endpoints.data_ats is None:
        notes.append(f"the iot:Data-ATS endpoint is unknown: set mqtt.url in {folder / CONFIG_FILE}")
    return notes


def write_private_key(folder: Path, private_key_pem: str) -> None:
    ensure_private_dir(folder)
    write_private(folder / KEY_FILE, private_key_pem)


def remove_bundle(folder: Path) -> list[str]:
    """Delete the files provisioning wrote (the key is useless once its certificate is deleted).

    Only the bundle's own file names go, and the folder only if that leaves it empty: `--out`
    may point at a folder that holds other things.
    """
    removed = []
    for name in (CONFIG_FILE, CERT_FILE, KEY_FILE, ROOT_CA_FILE, ROOT_CA_NOTE, SIGNING_PUBLIC_FILE):
        if (folder / name).is_file():
            (folder / name).unlink()
            removed.append(name)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return removed
