"""SageMakerModelRegistry: the ModelRegistry port on the SageMaker Model Registry, through boto3.

A model version is a model package in a versioned model package group (the seed registers its
trained models the same way). Metrics travel in the package's `CustomerMetadataProperties` as
`metric:<name>` = `repr(float)`, which both AWS and moto store and return verbatim; `ModelMetrics`
would need a metrics report in S3 and only holds its URI. Approval is the package's
`ModelApprovalStatus`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from system.errors import RegistryError
from system.ports import ModelVersion

APPROVALS = ("Approved", "Rejected", "PendingManualApproval")
METRIC_PREFIX = "metric:"
# CustomerMetadataProperties: at most 50 entries, keys of 1-128 characters from this set.
_METADATA_KEY = re.compile(r"^[\w\s.:/=+\-@]{1,128}$")
_MAX_METADATA_ENTRIES = 50
# The SageMaker TensorFlow inference image of the region the seed deploys to; the registry only
# records it (edge devices never pull it).
DEFAULT_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu"


class SageMakerModelRegistry:
    """Model package groups and versions with metrics and approval status.

    `image`, `content_types` and `response_types` fill the InferenceSpecification every package
    needs; `page_size` is ListModelPackages' MaxResults (SageMaker caps it at 100).
    """

    def __init__(
        self,
        client: Any,
        *,
        image: str = DEFAULT_IMAGE,
        content_types: tuple[str, ...] = ("application/x-image",),
        response_types: tuple[str, ...] = ("application/json",),
        page_size: int = 100,
    ) -> None:
        self.client = client
        self.image = image
        self.content_types = content_types
        self.response_types = response_types
        self.page_size = page_size

    @staticmethod
    def _fail(operation: str, subject: str, exc: ClientError | BotoCoreError) -> NoReturn:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '')} {error.get('Message', '')}".strip()
        else:
            detail = str(exc)
        raise RegistryError(f"SageMaker {operation} {subject} failed: {detail}") from exc

    def ensure_group(self, group: str, description: str = "") -> None:
        """Create the model package group unless it exists (idempotent)."""
        try:
            self.client.describe_model_package_group(ModelPackageGroupName=group)
            return
        except ClientError as exc:
            if not _is_missing(exc):
                self._fail("DescribeModelPackageGroup", group, exc)
        except BotoCoreError as exc:
            self._fail("DescribeModelPackageGroup", group, exc)
        request: dict[str, Any] = {"ModelPackageGroupName": group}
        if description:
            request["ModelPackageGroupDescription"] = description
        try:
            self.client.create_model_package_group(**request)
        except ClientError as exc:
            # Someone created it between our describe and create: that is the state we want.
            if "already exists" not in str(exc.response.get("Error", {}).get("Message", "")):
                self._fail("CreateModelPackageGroup", group, exc)
        except BotoCoreError as exc:
            self._fail("CreateModelPackageGroup", group, exc)

    def register(
        self, group: str, model_url: str, metrics: Mapping[str, float], approval: str = "PendingManualApproval"
    ) -> ModelVersion:
        """Add a version to `group` (which must exist) for the model artifact at `model_url`."""
        _check_approval(approval)
        request: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "ModelApprovalStatus": approval,
            "InferenceSpecification": {
                "Containers": [{"Image": self.image, "ModelDataUrl": model_url}],
                "SupportedContentTypes": list(self.content_types),
                "SupportedResponseMIMETypes": list(self.response_types),
            },
        }
        properties = _metrics_to_properties(metrics)
        if properties:
            request["CustomerMetadataProperties"] = properties
        try:
            arn = str(self.client.create_model_package(**request)["ModelPackageArn"])
        except (ClientError, BotoCoreError) as exc:
            self._fail("CreateModelPackage", f"in group {group}", exc)
        return self._describe(arn)

    def set_approval(self, version: ModelVersion, approval: str) -> ModelVersion:
        """Change a version's approval status; returns the version as the registry now has it."""
        _check_approval(approval)
        request: dict[str, Any] = {"ModelPackageArn": version.arn, "ModelApprovalStatus": approval}
        # AWS merges the CustomerMetadataProperties of an update into the package's; moto 5.2.5
        # replaces them, dropping the metrics when an update omits them. Sending the current
        # properties back is a no-op on AWS and keeps the metrics on moto.
        properties = self._package(version.arn).get("CustomerMetadataProperties")
        if properties:
            request["CustomerMetadataProperties"] = dict(properties)
        try:
            self.client.update_model_package(**request)
        except (ClientError, BotoCoreError) as exc:
            self._fail("UpdateModelPackage", version.arn, exc)
        return self._describe(version.arn)

    def versions(self, group: str, approval: str | None = None) -> list[ModelVersion]:
        """The group's versions (only those with `approval` if given), oldest version first."""
        request: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "PaginationConfig": {"PageSize": self.page_size},
        }
        if approval is not None:
            _check_approval(approval)
            request["ModelApprovalStatus"] = approval
        try:
            pages = self.client.get_paginator("list_model_packages").paginate(**request)
            arns = [str(item["ModelPackageArn"]) for page in pages for item in page["ModelPackageSummaryList"]]
        except (ClientError, BotoCoreError) as exc:
            self._fail("ListModelPackages", f"of group {group}", exc)
        # The summaries carry neither the model URL nor the metrics: describe each version.
        return sorted((self._describe(arn) for arn in arns), key=lambda version: version.version)

    def latest_approved(self, group: str) -> ModelVersion | None:
        """The approved version with the highest version number, if any (the seed's rule)."""
        approved = self.versions(group, approval="Approved")
        return approved[-1] if approved else None

    def _package(self, arn: str) -> dict[str, Any]:
        try:
            return dict(self.client.describe_model_package(ModelPackageName=arn))
        except (ClientError, BotoCoreError) as exc:
            self._fail("DescribeModelPackage", arn, exc)

    def _describe(self, arn: str) -> ModelVersion:
        package = self._package(arn)
        containers = package.get("InferenceSpecification", {}).get("Containers", [])
        return ModelVersion(
            group=str(package["ModelPackageGroupName"]),
            version=int(package["ModelPackageVersion"]),
            arn=str(package["ModelPackageArn"]),
            model_url=str(containers[0]["ModelDataUrl"]) if containers else "",
            approval=str(package["ModelApprovalStatus"]),
            metrics=_properties_to_metrics(package.get("CustomerMetadataProperties", {})),
        )


def _is_missing(exc: ClientError) -> bool:
    # SageMaker answers a missing group with ValidationException "... does not exist."
    error = exc.response.get("Error", {})
    return error.get("Code") in ("ValidationException", "ResourceNotFound") and "does not exist" in str(
        error.get("Message", "")
    )


def _check_approval(approval: str) -> None:
    if approval not in APPROVALS:
        raise RegistryError(f"approval must be one of {', '.join(APPROVALS)}, not {approval!r}")


def _metrics_to_properties(metrics: Mapping[str, float]) -> dict[str, str]:
    if len(metrics) > _MAX_METADATA_ENTRIES:
        raise RegistryError(f"at most {_MAX_METADATA_ENTRIES} metrics fit in a model package, not {len(metrics)}")
    properties: dict[str, str] = {}
    for name, value in metrics.items():
        key = METRIC_PREFIX + name
        if not _METADATA_KEY.match(key):
            raise RegistryError(f"metric name {name!r} cannot be a SageMaker metadata key")
        properties[key] = repr(float(value))
    return properties


def _properties_to_metrics(properties: Mapping[str, str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in properties.items():
        if key.startswith(METRIC_PREFIX):
            try:
                metrics[key[len(METRIC_PREFIX) :]] = float(value)
            except ValueError as exc:
                raise RegistryError(f"model package metadata {key}={value!r} is not a number") from exc
    return metrics
