"""Make a ProvisionPlan exist: each resource is looked up first and created only when missing.

A second run creates nothing and reports "exists" for every resource. The certificate is the one
exception to "look it up and recreate it": AWS IoT hands out a private key only once, at
CreateKeysAndCertificate, so an existing certificate attached to the thing is always reused (never a
second one), and if its key is no longer in the bundle folder the run says so, as a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from system.cloud.provision import bundle
from system.cloud.provision.plan import ProvisionPlan
from system.cloud.provision.report import StepLog
from system.cloud.provision.session import AwsClients, ProvisionError, aws_call
from system.cloud.provision.signing_key import ensure_signing_key

_MISSING = frozenset({"404", "NoSuchBucket", "NotFound", "ResourceNotFoundException", "NoSuchEntity"})


@dataclass(frozen=True)
class Certificate:
    arn: str
    certificate_id: str
    pem: str


def exists(what: str, call: Any, **kwargs: Any) -> Any | None:
    """The answer of a Describe/Get call, or None when the resource does not exist."""
    try:
        return aws_call(what, call, **kwargs)
    except ProvisionError as exc:
        if exc.code in _MISSING:
            return None
        raise


def _aws_tags(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


class Provisioner:
    """Ensures every resource of `plan`, writing the device bundle into `out`."""

    def __init__(
        self, clients: AwsClients, plan: ProvisionPlan, out: Path, log: StepLog, signing_key: Path | None = None
    ) -> None:
        """`signing_key`: the project's Ed25519 package signing key (made if missing); None leaves the
        bundle without `ota.signing_public_key` (a device on aws then needs `ota.allow_unsigned`)."""
        self.plan, self.out, self.log = plan, out, log
        self.signing_key = signing_key
        self.s3, self.iot = clients.make("s3"), clients.make("iot")
        self.iam, self.sagemaker = clients.make("iam"), clients.make("sagemaker")

    def apply(self, root_ca: Path | None = None) -> list[str]:
        """Ensure everything, write the bundle; returns notes (warnings) for the user."""
        # The local key first: a key file that cannot be used stops the run before AWS is touched.
        public = ensure_signing_key(self.signing_key, self.out, self.log) if self.signing_key is not None else None
        self.bucket()
        self.thing_group()
        self.thing()
        self.membership()
        self.iot_policy()
        role_arn = self.role()
        self.role_alias(role_arn)
        certificate = self.certificate()
        self.policy_attachment(certificate.arn)
        for group in self.plan.model_package_groups:
            self.model_package_group(group)
        notes = bundle.write_bundle(self.out, self.plan, self.endpoints(), certificate.pem, root_ca, public)
        if not bundle.has_private_key(self.out):
            notes.insert(0, self._missing_key_note(certificate))
        return notes

    # -- S3 ----------------------------------------------------------------------------------

    def bucket(self) -> None:
        name, s3 = self.plan.bucket, self.s3
        if exists(f"looking up bucket {name}", s3.head_bucket, Bucket=name) is not None:
            self.log("exists", "bucket", name)
        else:
            request: dict[str, Any] = {"Bucket": name}
            if self.plan.region != "us-east-1":  # us-east-1 refuses its own name as a constraint
                request["CreateBucketConfiguration"] = {"LocationConstraint": self.plan.region}
            aws_call(f"creating bucket {name}", s3.create_bucket, **request)
            self.log("created", "bucket", name)
        # Settings, not resources: putting them again is a no-op, and repairs a bucket left half-made.
        aws_call(
            f"enabling versioning on {name}",
            s3.put_bucket_versioning,
            Bucket=name,
            VersioningConfiguration={"Status": "Enabled"},
        )
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        aws_call(
            f"enabling encryption on {name}",
            s3.put_bucket_encryption,
            Bucket=name,
            ServerSideEncryptionConfiguration={"Rules": [rule]},
        )
        block = dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        )
        aws_call(
            f"blocking public access to {name}",
            s3.put_public_access_block,
            Bucket=name,
            PublicAccessBlockConfiguration=block,
        )
        aws_call(f"tagging {name}", s3.put_bucket_tagging, Bucket=name, Tagging={"TagSet": _aws_tags(self.plan.tags)})

    # -- IoT registry ------------------------------------------------------------------------

    def thing_group(self) -> None:
        name = self.plan.thing_group
        if exists(f"looking up thing group {name}", self.iot.describe_thing_group, thingGroupName=name):
            self.log("exists", "thing group", name)
            return
        aws_call(
            f"creating thing group {name}",
            self.iot.create_thing_group,
            thingGroupName=name,
            tags=_aws_tags(self.plan.tags),
        )
        self.log("created", "thing group", name)

    def thing(self) -> None:
        name = self.plan.thing_name
        if exists(f"looking up thing {name}", self.iot.describe_thing, thingName=name):
            self.log("exists", "thing", name)
            return
        attributes = {"attributes": {"edgesim_project": self.plan.project}}  # things take no tags
        aws_call(f"creating thing {name}", self.iot.create_thing, thingName=name, attributePayload=attributes)
        self.log("created", "thing", name)

    def membership(self) -> None:
        thing, group = self.plan.thing_name, self.plan.thing_group
        what = f"{thing} -> {group}"
        if thing in things_in_group(self.iot, group):
            self.log("exists", "thing in group", what)
            return
        aws_call(f"adding {what}", self.iot.add_thing_to_thing_group, thingGroupName=group, thingName=thing)
        self.log("created", "thing in group", what)

    def iot_policy(self) -> None:
        name, wanted = self.plan.policy_name, self.plan.policy_document
        found = exists(f"looking up IoT policy {name}", self.iot.get_policy, policyName=name)
        if found is None:
            aws_call(
                f"creating IoT policy {name}",
                self.iot.create_policy,
                policyName=name,
                policyDocument=json.dumps(wanted),
                tags=_aws_tags(self.plan.tags),
            )
            self.log("created", "iot policy", name)
        elif json.loads(found["policyDocument"]) != wanted:
            # Changing a live policy is a decision for a person, not a side effect of a rerun.
            self.log("warning", "iot policy", name, "exists with a different document; not changed")
        else:
            self.log("exists", "iot policy", name)

    # -- IAM role and role alias -------------------------------------------------------------

    def role(self) -> str:
        name = self.plan.role_name
        found = exists(f"looking up IAM role {name}", self.iam.get_role, RoleName=name)
        if found is None:
            found = aws_call(
                f"creating IAM role {name}",
                self.iam.create_role,
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(self.plan.trust_policy),
                Description=f"edgesim {self.plan.project}: devices' temporary S3 credentials",
                Tags=_aws_tags(self.plan.tags),
            )
            self.log("created", "iam role", name)
        else:
            self.log("exists", "iam role", name)
        inline, what = self.plan.role_policy_name, f"{name}/{self.plan.role_policy_name}"
        if exists(f"looking up {what}", self.iam.get_role_policy, RoleName=name, PolicyName=inline):
            self.log("exists", "iam role policy", what)
        else:
            aws_call(
                f"writing {what}",
                self.iam.put_role_policy,
                RoleName=name,
                PolicyName=inline,
                PolicyDocument=json.dumps(self.plan.role_policy),
            )
            self.log("created", "iam role policy", what)
        return str(found["Role"]["Arn"])

    def role_alias(self, role_arn: str) -> None:
        name = self.plan.role_alias
        if exists(f"looking up role alias {name}", self.iot.describe_role_alias, roleAlias=name):
            self.log("exists", "role alias", name)
            return
        aws_call(
            f"creating role alias {name}",
            self.iot.create_role_alias,
            roleAlias=name,
            roleArn=role_arn,
            credentialDurationSeconds=self.plan.credential_seconds,
            tags=_aws_tags(self.plan.tags),
        )
        self.log("created", "role alias", name)

    # -- certificate -------------------------------------------------------------------------

    def certificate(self) -> Certificate:
        thing = self.plan.thing_name
        attached = thing_certificates(self.iot, thing)
        if attached:
            arn = attached[0]
            described = aws_call(
                f"reading certificate {arn}", self.iot.describe_certificate, certificateId=arn.rsplit("/", 1)[1]
            )["certificateDescription"]
            certificate = Certificate(arn, described["certificateId"], described["certificatePem"])
            status = described.get("status", "")
            detail = "" if status == "ACTIVE" else f"status {status}: not usable until activated"
            self.log("exists" if not detail else "warning", "certificate", certificate.certificate_id, detail)
            return certificate
        created = aws_call("creating the device certificate", self.iot.create_keys_and_certificate, setAsActive=True)
        # The key exists only in this answer: write it before anything else can fail.
        bundle.write_private_key(self.out, created["keyPair"]["PrivateKey"])
        certificate = Certificate(created["certificateArn"], created["certificateId"], created["certificatePem"])
        aws_call(
            f"attaching the certificate to {thing}",
            self.iot.attach_thing_principal,
            thingName=thing,
            principal=certificate.arn,
        )
        self.log("created", "certificate", certificate.certificate_id, f"active, attached to {thing}")
        return certificate

    def policy_attachment(self, certificate_arn: str) -> None:
        name = self.plan.policy_name
        what = f"{name} -> certificate"
        answer = aws_call(
            f"listing policies of {certificate_arn}", self.iot.list_attached_policies, target=certificate_arn
        )
        if any(policy["policyName"] == name for policy in answer.get("policies", [])):
            self.log("exists", "policy attachment", what)
            return
        aws_call(
            f"attaching {name} to the certificate", self.iot.attach_policy, policyName=name, target=certificate_arn
        )
        self.log("created", "policy attachment", what)

    def _missing_key_note(self, certificate: Certificate) -> str:
        return (
            f"certificate {certificate.certificate_id} is attached to {self.plan.thing_name} but its private key is "
            f"not in {self.out / bundle.KEY_FILE}; AWS IoT never returns a private key again. Copy the original "
            f"bundle's {bundle.KEY_FILE} back, or run --destroy and provision again for a new certificate"
        )

    # -- SageMaker and endpoints -------------------------------------------------------------

    def model_package_group(self, name: str) -> None:
        sagemaker = self.sagemaker
        what = f"looking up model package group {name}"
        try:
            found = aws_call(what, sagemaker.describe_model_package_group, ModelPackageGroupName=name)
        except ProvisionError as exc:
            if exc.code != "ValidationException":  # SageMaker's answer for a missing group
                raise
            found = None
        if found is not None:
            self.log("exists", "model package group", name)
            return
        aws_call(
            f"creating model package group {name}",
            sagemaker.create_model_package_group,
            ModelPackageGroupName=name,
            ModelPackageGroupDescription=f"edgesim project {self.plan.project}",
            Tags=_aws_tags(self.plan.tags),
        )
        self.log("created", "model package group", name)

    def endpoints(self) -> bundle.Endpoints:
        """The account's IoT endpoints; a refusal leaves one unknown (reported) rather than failing."""
        found: dict[str, str | None] = {}
        for kind in ("iot:Data-ATS", "iot:CredentialProvider"):
            try:
                answer = aws_call(f"describing the {kind} endpoint", self.iot.describe_endpoint, endpointType=kind)
                found[kind] = str(answer["endpointAddress"])
                self.log("exists", "endpoint", kind, found[kind] or "")
            except ProvisionError as exc:
                found[kind] = None
                self.log("warning", "endpoint", kind, f"unknown: {exc}")
        return bundle.Endpoints(data_ats=found["iot:Data-ATS"], credentials=found["iot:CredentialProvider"])


def things_in_group(iot: Any, group: str) -> list[str]:
    pages = iot.get_paginator("list_things_in_thing_group").paginate(thingGroupName=group)
    return [name for page in aws_call(f"listing things of {group}", lambda: list(pages)) for name in page["things"]]


def thing_certificates(iot: Any, thing: str) -> list[str]:
    answer = aws_call(f"listing principals of {thing}", iot.list_thing_principals, thingName=thing)
    return [arn for arn in answer.get("principals", []) if ":cert/" in arn]
