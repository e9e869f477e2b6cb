"""Remove what `edgesim provision` made for a project and one device, step by step.

The device's resources go first (its certificates, its group membership, the thing). The project's
shared resources (policy, role alias, role, thing group, bucket, model package groups) go only when
no other thing is left in the project's thing group, so destroying one device of a fleet never cuts
off the others; they are then reported as "kept". A bucket is emptied (every version and delete
marker) only if it carries this project's `edgesim:project` tag, so a bucket someone else made
under the same name is never wiped. Deletes that follow a detach are retried for up to 15 s while
AWS still refuses them (detaches propagate asynchronously: `session.settled_call`).
"""

from __future__ import annotations

from pathlib import Path

from system.cloud.provision import bundle
from system.cloud.provision.apply import exists, thing_certificates, things_in_group
from system.cloud.provision.plan import TAG_KEY, ProvisionPlan
from system.cloud.provision.report import StepLog
from system.cloud.provision.session import AwsClients, ProvisionError, aws_call, settled_call

# What an endpoint answers for an action it does not implement (moto: HTTP 500, or this code).
_UNSUPPORTED = frozenset({"500", "501", "NotImplemented", "InternalFailure"})


class Destroyer:
    """Deletes the resources of `plan` in dependency order, logging one step per resource."""

    def __init__(self, clients: AwsClients, plan: ProvisionPlan, out: Path, log: StepLog) -> None:
        self.plan, self.out, self.log = plan, out, log
        self.s3, self.iot = clients.make("s3"), clients.make("iot")
        self.iam, self.sagemaker = clients.make("iam"), clients.make("sagemaker")

    def destroy(self) -> None:
        self.device()
        others = self._other_things()
        if others:
            detail = f"thing group still holds {', '.join(sorted(others))}"
            for kind, name in self.plan.resources():
                if kind in ("iot policy", "iam role", "role alias", "thing group", "bucket", "model package group"):
                    self.log("kept", kind, name, detail)
            return
        self.iot_policy()
        self.role_alias()
        self.role()
        self.thing_group()
        self.bucket()
        for group in self.plan.model_package_groups:
            self.model_package_group(group)

    # -- the device --------------------------------------------------------------------------

    def device(self) -> None:
        thing, group = self.plan.thing_name, self.plan.thing_group
        if not exists(f"looking up thing {thing}", self.iot.describe_thing, thingName=thing):
            self.log("absent", "thing", thing)
        else:
            for arn in thing_certificates(self.iot, thing):
                self.certificate(arn)
            group_found = exists(f"looking up {group}", self.iot.describe_thing_group, thingGroupName=group)
            if group_found and thing in things_in_group(self.iot, group):
                aws_call(
                    f"removing {thing} from {group}",
                    self.iot.remove_thing_from_thing_group,
                    thingGroupName=group,
                    thingName=thing,
                )
                self.log("deleted", "thing in group", f"{thing} -> {group}")
            settled_call(f"deleting thing {thing}", self.iot.delete_thing, thingName=thing)
            self.log("deleted", "thing", thing)
        removed = bundle.remove_bundle(self.out)
        self.log("deleted" if removed else "absent", "bundle files", str(self.out), ", ".join(removed))

    def certificate(self, arn: str) -> None:
        """Detach policies and thing, deactivate, delete: AWS refuses to delete it in any other order."""
        certificate_id = arn.rsplit("/", 1)[1]
        policies = aws_call(f"listing policies of {certificate_id}", self.iot.list_attached_policies, target=arn)
        for policy in policies.get("policies", []):
            aws_call(
                f"detaching {policy['policyName']}", self.iot.detach_policy, policyName=policy["policyName"], target=arn
            )
            self.log("deleted", "policy attachment", f"{policy['policyName']} -> certificate")
        aws_call(
            f"detaching {certificate_id} from {self.plan.thing_name}",
            self.iot.detach_thing_principal,
            thingName=self.plan.thing_name,
            principal=arn,
        )
        aws_call(
            f"deactivating {certificate_id}",
            self.iot.update_certificate,
            certificateId=certificate_id,
            newStatus="INACTIVE",
        )
        settled_call(
            f"deleting certificate {certificate_id}", self.iot.delete_certificate, certificateId=certificate_id
        )
        self.log("deleted", "certificate", certificate_id, "detached, deactivated")

    def _other_things(self) -> list[str]:
        group = self.plan.thing_group
        if not exists(f"looking up {group}", self.iot.describe_thing_group, thingGroupName=group):
            return []
        return [name for name in things_in_group(self.iot, group) if name != self.plan.thing_name]

    # -- the project -------------------------------------------------------------------------

    def iot_policy(self) -> None:
        name = self.plan.policy_name
        if not exists(f"looking up IoT policy {name}", self.iot.get_policy, policyName=name):
            self.log("absent", "iot policy", name)
            return
        targets = aws_call(f"listing targets of {name}", self.iot.list_targets_for_policy, policyName=name)
        if targets.get("targets"):
            self.log("kept", "iot policy", name, f"still attached to {len(targets['targets'])} certificate(s)")
            return
        versions = aws_call(f"listing versions of {name}", self.iot.list_policy_versions, policyName=name)
        for version in versions.get("policyVersions", []):
            if not version.get("isDefaultVersion"):  # DeletePolicy refuses a policy with other versions
                aws_call(
                    f"deleting a version of {name}",
                    self.iot.delete_policy_version,
                    policyName=name,
                    policyVersionId=version["versionId"],
                )
        settled_call(f"deleting IoT policy {name}", self.iot.delete_policy, policyName=name)
        self.log("deleted", "iot policy", name)

    def role_alias(self) -> None:
        name = self.plan.role_alias
        if not exists(f"looking up role alias {name}", self.iot.describe_role_alias, roleAlias=name):
            self.log("absent", "role alias", name)
            return
        aws_call(f"deleting role alias {name}", self.iot.delete_role_alias, roleAlias=name)
        self.log("deleted", "role alias", name)

    def role(self) -> None:
        name, inline = self.plan.role_name, self.plan.role_policy_name
        if not exists(f"looking up IAM role {name}", self.iam.get_role, RoleName=name):
            self.log("absent", "iam role", name)
            return
        if exists(f"looking up {name}/{inline}", self.iam.get_role_policy, RoleName=name, PolicyName=inline):
            aws_call(f"deleting {name}/{inline}", self.iam.delete_role_policy, RoleName=name, PolicyName=inline)
            self.log("deleted", "iam role policy", f"{name}/{inline}")
        settled_call(f"deleting IAM role {name}", self.iam.delete_role, RoleName=name)
        self.log("deleted", "iam role", name)

    def thing_group(self) -> None:
        name = self.plan.thing_group
        if not exists(f"looking up thing group {name}", self.iot.describe_thing_group, thingGroupName=name):
            self.log("absent", "thing group", name)
            return
        aws_call(f"deleting thing group {name}", self.iot.delete_thing_group, thingGroupName=name)
        self.log("deleted", "thing group", name)

    def bucket(self) -> None:
        name = self.plan.bucket
        if exists(f"looking up bucket {name}", self.s3.head_bucket, Bucket=name) is None:
            self.log("absent", "bucket", name)
            return
        tagging = exists(f"reading the tags of {name}", self.s3.get_bucket_tagging, Bucket=name)
        tags = {tag["Key"]: tag["Value"] for tag in (tagging or {}).get("TagSet", [])}
        if tags.get(TAG_KEY) != self.plan.project:
            self.log("kept", "bucket", name, f"no {TAG_KEY}={self.plan.project} tag: not made by edgesim provision")
            return
        count = self._empty(name)
        aws_call(f"deleting bucket {name}", self.s3.delete_bucket, Bucket=name)
        self.log("deleted", "bucket", name, f"with {count} object version(s) and delete marker(s)")

    def _empty(self, name: str) -> int:
        pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=name)
        count = 0
        for page in aws_call(f"listing versions in {name}", lambda: list(pages)):
            keys = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if keys:  # at most 1000 per page, DeleteObjects' limit too
                aws_call(
                    f"deleting versions in {name}",
                    self.s3.delete_objects,
                    Bucket=name,
                    Delete={"Objects": keys, "Quiet": True},
                )
                count += len(keys)
        return count

    def model_package_group(self, name: str) -> None:
        try:
            aws_call(
                f"deleting model package group {name}",
                self.sagemaker.delete_model_package_group,
                ModelPackageGroupName=name,
            )
        except ProvisionError as exc:
            if exc.code in _UNSUPPORTED:
                self.log("skipped", "model package group", name, f"this endpoint cannot delete it ({exc.code})")
                return
            if exc.code == "ValidationException" and "does not exist" in str(exc):
                self.log("absent", "model package group", name)
                return
            raise
        self.log("deleted", "model package group", name)
