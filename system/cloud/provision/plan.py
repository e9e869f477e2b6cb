"""What `edgesim provision` makes for a project and one device: a pure, printable value.

Names (one scheme, so that `--destroy` finds exactly what provisioning made):

| resource | name |
|---|---|
| S3 bucket (versioned, SSE-S3) | `edgesim-<project>-<account>-<region>` (bucket names are global) |
| thing group | `defect-detection-<project>-group` (what `edgesim pipeline deploy` targets on aws) |
| thing | `--thing`, default `edge-device-<project>` (the seed's name) |
| IoT policy | `edgesim-<project>-device` (one per project, bound to the caller's thing) |
| IAM role, role alias | `edgesim-<project>-device` |
| model package groups | `defect-detection-img-classification-<project>`, `...-semantic-segmentation-<project>` |

The model package groups keep the names `edgesim pipeline` registers into on the aws profile
(system/cloud/pipeline/backends.py). Resources that take tags get `edgesim:project=<project>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from system.cloud.provision.policies import credentials_trust_policy, device_policy, device_s3_policy
from system.errors import ConfigError

# 24 characters at most keeps `edgesim-<project>-<12-digit account>-<region>` within S3's 63.
_PROJECT = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$")
# A thing name is also the MQTT client id and a topic level: no '/', '+', '#', and AWS allows
# only [a-zA-Z0-9:_-]; ':' is left out because it would end an ARN's resource part early.
_THING = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ACCOUNT = re.compile(r"^\d{12}$")
MODEL_TASKS = ("img-classification", "semantic-segmentation")
TAG_KEY = "edgesim:project"
CREDENTIAL_SECONDS = 3600  # lifetime of the temporary S3 keys the device gets (AWS: 900-43200)


@dataclass(frozen=True)
class ProvisionPlan:
    """Every resource of one project and one device, with the policy documents to install."""

    project: str
    region: str
    account_id: str
    partition: str
    thing_name: str
    bucket: str
    thing_group: str
    policy_name: str
    role_name: str
    role_policy_name: str
    role_alias: str
    model_package_groups: tuple[str, ...]
    policy_document: dict[str, Any] = field(repr=False)
    trust_policy: dict[str, Any] = field(repr=False)
    role_policy: dict[str, Any] = field(repr=False)
    credential_seconds: int = CREDENTIAL_SECONDS

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_KEY: self.project}

    def resources(self) -> list[tuple[str, str]]:
        """(kind, name) of every resource, in the order `apply` ensures them."""
        return [
            ("bucket", self.bucket),
            ("thing group", self.thing_group),
            ("thing", self.thing_name),
            ("thing in group", f"{self.thing_name} -> {self.thing_group}"),
            ("iot policy", self.policy_name),
            ("iam role", self.role_name),
            ("iam role policy", f"{self.role_name}/{self.role_policy_name}"),
            ("role alias", self.role_alias),
            ("certificate", f"active, attached to {self.thing_name} and {self.policy_name}"),
            *(("model package group", name) for name in self.model_package_groups),
        ]

    def render(self) -> str:
        """The plan as text: the resources, then the three policy documents."""
        lines = [f"edgesim provision plan: project {self.project}, account {self.account_id}, region {self.region}"]
        lines += [f"  {kind:<20} {name}" for kind, name in self.resources()]
        lines.append(f"  bucket settings      versioning Enabled, default encryption AES256 (SSE-S3), tag {TAG_KEY}")
        for title, document in (
            (f"IoT policy {self.policy_name}", self.policy_document),
            (f"trust policy of {self.role_name}", self.trust_policy),
            (f"permissions of {self.role_name} ({self.role_policy_name})", self.role_policy),
        ):
            lines.append(f"{title}:")
            lines.append(json.dumps(document, indent=2))
        return "\n".join(lines)


def validate_project(project: str) -> str:
    if not _PROJECT.match(project):
        raise ConfigError(f"--project {project!r} must be 1-24 lowercase letters, digits or inner hyphens")
    return project


def build_plan(
    project: str, *, region: str, account_id: str, partition: str = "aws", thing: str | None = None
) -> ProvisionPlan:
    """The plan for `project` (and `thing`, default `edge-device-<project>`) in one account and region."""
    validate_project(project)
    thing_name = thing or f"edge-device-{project}"
    if not _THING.match(thing_name):
        raise ConfigError(f"--thing {thing_name!r} must be 1-128 letters, digits, '_' or '-'")
    if not _ACCOUNT.match(account_id):
        raise ConfigError(f"account id {account_id!r} must be 12 digits")
    if not region:
        raise ConfigError("no AWS region: pass --region or set AWS_REGION")
    bucket = f"edgesim-{project}-{account_id}-{region}"
    device = f"edgesim-{project}-device"
    return ProvisionPlan(
        project=project,
        region=region,
        account_id=account_id,
        partition=partition,
        thing_name=thing_name,
        bucket=bucket,
        thing_group=f"defect-detection-{project}-group",
        policy_name=device,
        role_name=device,
        role_policy_name="device-s3",
        role_alias=device,
        model_package_groups=tuple(f"defect-detection-{task}-{project}" for task in MODEL_TASKS),
        policy_document=device_policy(partition, region, account_id, device),
        trust_policy=credentials_trust_policy(),
        role_policy=device_s3_policy(partition, bucket),
    )
