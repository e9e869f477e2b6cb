"""ModelRegistry: one body per behaviour, on moto in-process and on the moto server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulators.moto_env import MotoEnvironment
from system.adapters.sagemaker_registry import SageMakerModelRegistry
from system.errors import RegistryError

Registry = tuple[SageMakerModelRegistry, str]


@pytest.fixture
def make_registry(moto_env: MotoEnvironment, unique_name: Callable[[str], str]) -> Callable[..., Registry]:
    """Factory: a registry adapter and a fresh, existing group name (removed with the environment)."""

    def factory(**options: object) -> Registry:
        registry = SageMakerModelRegistry(moto_env.client("sagemaker"), **options)  # type: ignore[arg-type]
        group = unique_name("defect-detection-img-classification")
        registry.ensure_group(group, "contract test")
        return registry, group

    return factory


def test_register_returns_a_pending_version_whose_metrics_round_trip(make_registry: Callable[..., Registry]) -> None:
    registry, group = make_registry()
    metrics = {"accuracy": 0.9375, "validation:loss": 0.1 + 0.2, "f1": 1e-12}
    version = registry.register(group, "s3://bucket/models/1/model.tar.gz", metrics)
    assert (version.group, version.version, version.approval) == (group, 1, "PendingManualApproval")
    assert version.model_url == "s3://bucket/models/1/model.tar.gz"
    assert version.arn.endswith(f"model-package/{group}/1")
    assert dict(version.metrics) == metrics
    (listed,) = registry.versions(group)
    assert listed == version
    assert dict(listed.metrics) == metrics  # exact floats, not rounded


def test_set_approval_changes_what_versions_reports(make_registry: Callable[..., Registry]) -> None:
    registry, group = make_registry()
    version = registry.register(group, "s3://b/m1.tar.gz", {"accuracy": 0.8})
    approved = registry.set_approval(version, "Approved")
    assert approved.approval == "Approved"
    assert registry.versions(group) == [approved]
    assert registry.versions(group, approval="Approved") == [approved]
    assert registry.versions(group, approval="PendingManualApproval") == []


def test_latest_approved_ignores_pending_and_rejected_versions(make_registry: Callable[..., Registry]) -> None:
    registry, group = make_registry()
    assert registry.latest_approved(group) is None
    registry.register(group, "s3://b/1", {}, approval="Approved")
    second = registry.register(group, "s3://b/2", {}, approval="Approved")
    registry.register(group, "s3://b/3", {}, approval="Rejected")
    registry.register(group, "s3://b/4", {})
    latest = registry.latest_approved(group)
    assert latest is not None
    assert (latest.version, latest.model_url) == (second.version, "s3://b/2")


def test_versions_are_ordered_by_version_number_across_pages(make_registry: Callable[..., Registry]) -> None:
    registry, group = make_registry(page_size=2)
    for number in range(1, 6):
        registry.register(group, f"s3://b/{number}", {"n": float(number)})
    versions = registry.versions(group)
    assert [v.version for v in versions] == [1, 2, 3, 4, 5]
    assert [v.metrics["n"] for v in versions] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_ensure_group_is_idempotent(moto_env: MotoEnvironment, make_registry: Callable[..., Registry]) -> None:
    registry, group = make_registry()
    registry.ensure_group(group, "again")
    registry.ensure_group(group)
    client = moto_env.client("sagemaker")
    names = [g["ModelPackageGroupName"] for g in client.list_model_package_groups()["ModelPackageGroupSummaryList"]]
    assert names.count(group) == 1
    assert registry.versions(group) == []


def test_registering_in_a_missing_group_raises_registry_error(
    make_registry: Callable[..., Registry], unique_name: Callable[[str], str]
) -> None:
    registry, _ = make_registry()
    with pytest.raises(RegistryError, match="CreateModelPackage"):
        registry.register(unique_name("no-such-group"), "s3://b/m", {})


def test_approving_a_version_that_does_not_exist_raises_registry_error(make_registry: Callable[..., Registry]) -> None:
    registry, group = make_registry()
    version = registry.register(group, "s3://b/m", {})
    ghost = type(version)(group, 99, version.arn.replace("/1", "/99"), "s3://b/x", "PendingManualApproval")
    with pytest.raises(RegistryError, match=r"ModelPackage .*/99"):
        registry.set_approval(ghost, "Approved")
