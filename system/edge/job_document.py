"""The OTA job document: the seed's five fields, plus optional integrity fields (DESIGN.md section 3.3).

    {"type": "new_model", "model_name": "unet", "model_version": "3",
     "model_package_bucket": "...", "model_package_key": "models/unet-3.tar.gz",
     "sha256": "<hex>", "signature": "<base64 Ed25519>", "size": 123456, "min_agent_version": "0.1"}

Unknown fields are ignored, so newer clouds can add fields older devices skip. A document that
cannot be acted on raises `JobDocumentError` with the reason the device reports (the job ends
REJECTED, never silently SUCCEEDED as in the seed).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from system.edge.versions import InvalidVersionError, Version
from system.errors import EdgesimError

JOB_TYPE = "new_model"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")  # becomes part of an agent model name


class JobDocumentError(EdgesimError):
    """The job document cannot be acted on; the message is the reason reported with REJECTED."""


@dataclass(frozen=True)
class ModelUpdate:
    model_name: str
    version: Version
    bucket: str
    key: str
    sha256: str | None = None
    signature: bytes | None = None
    size: int | None = None
    min_agent_version: Version | None = None

    @property
    def identifier(self) -> str:
        """The agent model name of this version: `<name>-<version with . -> ->`, as the seed named it."""
        return f"{self.model_name}-{self.version.text.replace('.', '-')}"


def _required_string(document: Mapping[str, Any], field: str) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not value.strip():
        raise JobDocumentError(f"job document field {field!r} is missing or not a non-empty string")
    return value.strip()


def parse_job_document(document: object) -> ModelUpdate:
    """The model update a job asks for, or JobDocumentError naming what is wrong."""
    if not isinstance(document, Mapping):
        raise JobDocumentError("the job document is not a JSON object")
    job_type = document.get("type")
    if job_type != JOB_TYPE:
        raise JobDocumentError(f"job type {job_type!r} is not supported; this device handles {JOB_TYPE!r}")
    name = _required_string(document, "model_name")
    if not _NAME.match(name):
        raise JobDocumentError(f"model_name {name!r} must be letters, digits and inner hyphens")
    try:
        version = Version.parse(document.get("model_version"))
        min_agent = document.get("min_agent_version")
        min_agent_version = Version.parse(min_agent) if min_agent is not None else None
    except InvalidVersionError as exc:
        raise JobDocumentError(str(exc)) from exc
    bucket = _required_string(document, "model_package_bucket")
    if not _BUCKET.match(bucket):
        raise JobDocumentError(f"model_package_bucket {bucket!r} is not a valid S3 bucket name")
    key = _required_string(document, "model_package_key")
    return ModelUpdate(
        model_name=name,
        version=version,
        bucket=bucket,
        key=key,
        sha256=_sha256(document.get("sha256")),
        signature=_signature(document.get("signature")),
        size=_size(document.get("size")),
        min_agent_version=min_agent_version,
    )


def _sha256(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256.match(value.lower()):
        raise JobDocumentError("sha256 must be 64 hexadecimal characters")
    return value.lower()


def _signature(value: object) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise JobDocumentError("signature must be a base64 Ed25519 signature (64 bytes)")
    return raw


def _size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise JobDocumentError("size must be a positive integer (bytes)")
    return value
