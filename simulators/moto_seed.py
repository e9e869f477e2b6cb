"""The seed's cloud resources for one project, created idempotently through boto3.

What the sample's CloudFormation stack and its custom resource make (seed-behaviours.md, "stack"):
a versioned AES256 bucket `sm-edge-workshop-<project>-<account>`, the thing
`edge-device-<project>` in the thing group `defect-detection-<project>-group`, an active
certificate attached to the thing and to the IoT policy `defect-detection-policy-<project>`, and
the two model package groups. Unlike the seed, the policy is least privilege: the device may
connect as its own thing name and use only its own `$aws/things/<thing>/` topics (the seed
allowed `$aws/*` to everyone).

Calling it again finds what exists and creates only what is missing. The certificate's private
key cannot be read back from AWS IoT, so the first call stores the PEMs in the project bucket at
`CERTIFICATE_KEY` (as the seed's custom resource ships them in its agent tarball) and later calls
read them there; if that object is gone a new certificate is made and attached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from system.adapters.sagemaker_registry import SageMakerModelRegistry
from system.errors import ConfigError, EdgesimError

CERTIFICATE_KEY = "edgesim-seed/{thing}/iot-certificate.json"
_CERTIFICATE_FIELDS = ("certificate_id", "certificate_arn", "certificate_pem", "private_key_pem", "public_key_pem")
_PROJECT = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,31}[a-z0-9])?$")  # keeps the bucket name <= 63


class SeedError(EdgesimError):
    """A seed resource could not be found or created."""


@dataclass(frozen=True)
class SeededProject:
    """Names, ARNs and the device credentials of one seeded project."""

    project: str
    region: str
    account_id: str
    bucket: str
    thing_name: str
    thing_arn: str
    thing_group_name: str
    thing_group_arn: str
    policy_name: str
    policy_document: str
    certificate_id: str
    certificate_arn: str
    certificate_pem: str
    private_key_pem: str
    public_key_pem: str
    registry_groups: tuple[str, str]  # image classification, semantic segmentation


def device_policy(partition: str, region: str, account_id: str, thing: str) -> dict[str, Any]:
    """The least-privilege IoT policy of one device: its client id, its own reserved topics, and
    publishing its telemetry (`edgesim/<thing>/telemetry/...`, system/edge/telemetry.py)."""
    prefix = f"arn:{partition}:iot:{region}:{account_id}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{prefix}:client/{thing}"},
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": f"{prefix}:topic/$aws/things/{thing}/*",
            },
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{prefix}:topicfilter/$aws/things/{thing}/*"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{prefix}:topic/edgesim/{thing}/telemetry/*"},
        ],
    }


def seed_project(client: Callable[[str], Any], project: str, *, region: str, account_id: str) -> SeededProject:
    """Find or create every seed resource of `project`; `client(service)` makes boto3 clients."""
    if not _PROJECT.match(project):
        raise ConfigError(f"project {project!r} must be 1-33 lowercase letters, digits or inner hyphens")
    seeder = _Seeder(client, region, account_id)
    try:
        return seeder.seed(project)
    except (ClientError, BotoCoreError) as exc:
        raise SeedError(f"seeding project {project} failed while {seeder.step}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _Seeder:
    def __init__(self, client: Callable[[str], Any], region: str, account_id: str) -> None:
        self.s3 = client("s3")
        self.iot = client("iot")
        self.sagemaker = client("sagemaker")
        self.region = region
        self.account_id = account_id
        self.step = "starting"

    def seed(self, project: str) -> SeededProject:
        bucket = self._bucket(f"sm-edge-workshop-{project}-{self.account_id}")
        thing = f"edge-device-{project}"
        thing_arn = self._thing(thing)
        group = f"defect-detection-{project}-group"
        group_arn = self._thing_group(group)
        self.step = f"adding {thing} to {group}"
        self.iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
        policy_name = f"defect-detection-policy-{project}"
        document = json.dumps(device_policy(thing_arn.split(":")[1], self.region, self.account_id, thing), indent=2)
        self._policy(policy_name, document)
        certificate = self._certificate(bucket, thing)
        self.step = "attaching the certificate"
        self.iot.attach_thing_principal(thingName=thing, principal=certificate["certificate_arn"])
        self.iot.attach_policy(policyName=policy_name, target=certificate["certificate_arn"])
        groups = (
            f"defect-detection-img-classification-{project}",
            f"defect-detection-semantic-segmentation-{project}",
        )
        self.step = "creating the model package groups"
        registry = SageMakerModelRegistry(self.sagemaker)
        for name in groups:
            registry.ensure_group(name, f"edgesim project {project}")
        return SeededProject(
            project=project,
            region=self.region,
            account_id=self.account_id,
            bucket=bucket,
            thing_name=thing,
            thing_arn=thing_arn,
            thing_group_name=group,
            thing_group_arn=group_arn,
            policy_name=policy_name,
            policy_document=document,
            registry_groups=groups,
            **certificate,
        )

    def _bucket(self, bucket: str) -> str:
        self.step = f"creating bucket {bucket}"
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            request: dict[str, Any] = {"Bucket": bucket}
            if self.region != "us-east-1":  # us-east-1 refuses its own name as a constraint
                request["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            self.s3.create_bucket(**request)
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        return bucket

    def _thing(self, thing: str) -> str:
        self.step = f"creating thing {thing}"
        try:
            return str(self.iot.describe_thing(thingName=thing)["thingArn"])
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
        return str(self.iot.create_thing(thingName=thing)["thingArn"])

    def _thing_group(self, group: str) -> str:
        self.step = f"creating thing group {group}"
        try:
            return str(self.iot.describe_thing_group(thingGroupName=group)["thingGroupArn"])
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
        return str(self.iot.create_thing_group(thingGroupName=group)["thingGroupArn"])

    def _policy(self, name: str, document: str) -> None:
        self.step = f"creating policy {name}"
        try:
            current = self.iot.get_policy(policyName=name)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            self.iot.create_policy(policyName=name, policyDocument=document)
            return
        if json.loads(current["policyDocument"]) != json.loads(document):
            self.iot.create_policy_version(policyName=name, policyDocument=document, setAsDefault=True)

    def _certificate(self, bucket: str, thing: str) -> dict[str, str]:
        self.step = f"finding the certificate of {thing}"
        key = CERTIFICATE_KEY.format(thing=thing)
        stored = self._stored_certificate(bucket, key)
        if stored is not None and self._still_valid(stored, thing):
            return stored
        self.step = f"creating a certificate for {thing}"
        created = self.iot.create_keys_and_certificate(setAsActive=True)
        certificate = {
            "certificate_id": str(created["certificateId"]),
            "certificate_arn": str(created["certificateArn"]),
            "certificate_pem": str(created["certificatePem"]),
            "private_key_pem": str(created["keyPair"]["PrivateKey"]),
            "public_key_pem": str(created["keyPair"]["PublicKey"]),
        }
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(certificate).encode())
        return certificate

    def _still_valid(self, stored: dict[str, str], thing: str) -> bool:
        """The stored certificate still exists, is active and is attached to the thing."""
        try:
            described = self.iot.describe_certificate(certificateId=stored["certificate_id"])
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            return False
        principals = self.iot.list_thing_principals(thingName=thing)["principals"]
        return described["certificateDescription"]["status"] == "ACTIVE" and stored["certificate_arn"] in principals

    def _stored_certificate(self, bucket: str, key: str) -> dict[str, str] | None:
        try:
            raw = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) == "NoSuchKey":
                return None
            raise
        try:
            stored = json.loads(raw)
        except ValueError:
            return None  # not ours: make a new certificate
        if not isinstance(stored, dict) or set(stored) != set(_CERTIFICATE_FIELDS):
            return None  # not ours, or from another version: make a new certificate
        return {name: str(stored[name]) for name in _CERTIFICATE_FIELDS}
