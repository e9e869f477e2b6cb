"""The boto3 adapters at their boundary: request shapes and error translation, with botocore's Stubber.

No server and no moto: each test scripts the exact responses a real service gives, including the
ones moto never produces (throttling, a server that ignores Range, a connection refused).
"""

from __future__ import annotations

import functools
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber

from simulators.moto_env import offline_session
from system.adapters.iot_jobs_control import INTERNAL_FAILURE, IotJobsControl
from system.adapters.s3_object_store import S3ObjectStore
from system.adapters.sagemaker_registry import SageMakerModelRegistry
from system.errors import JobsError, ObjectNotFoundError, ObjectStoreError, RegistryError
from system.ports import JobSpec, ModelVersion

BUCKET = "unit-bucket"


@functools.cache
def _session() -> Any:
    return offline_session("us-east-1")  # one per module: building a session costs ~0.2 s


def _client(service: str, endpoint_url: str | None = None) -> Any:
    return _session().client(service, endpoint_url=endpoint_url, config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture
def stubbed() -> Iterator[Any]:
    """Factory: a client of `service` whose responses the test scripts; every script must be used up."""
    stubbers: list[Stubber] = []

    def factory(service: str) -> tuple[Any, Stubber]:
        client = _client(service)
        stubber = Stubber(client)
        stubber.activate()
        stubbers.append(stubber)
        return client, stubber

    yield factory
    for stubber in stubbers:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


# -- S3ObjectStore ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("NoSuchKey", 404, ObjectNotFoundError),
        ("NoSuchBucket", 404, ObjectStoreError),
        ("InternalError", 500, ObjectStoreError),
        ("AccessDenied", 403, ObjectStoreError),
    ],
)
def test_s3_errors_become_object_store_errors_naming_the_call(
    stubbed: Any, code: str, status: int, error: type[Exception]
) -> None:
    client, stubber = stubbed("s3")
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    with pytest.raises(error) as raised:
        S3ObjectStore(client, BUCKET).get_bytes("models/m.tar.gz")
    assert f"GetObject s3://{BUCKET}/models/m.tar.gz" in str(raised.value)
    assert code in str(raised.value)
    if error is ObjectStoreError:
        assert not isinstance(raised.value, ObjectNotFoundError)


def test_s3_head_404_is_object_not_found(stubbed: Any, tmp_path: Path) -> None:
    client, stubber = stubbed("s3")
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    with pytest.raises(ObjectNotFoundError, match="HeadObject"):
        S3ObjectStore(client, BUCKET).download_file("k", tmp_path / "k")


def test_s3_unreachable_endpoint_is_an_object_store_error() -> None:
    store = S3ObjectStore(_client("s3", f"http://127.0.0.1:{_closed_port()}"), BUCKET)
    with pytest.raises(ObjectStoreError, match=f"PutObject s3://{BUCKET}/k failed: Could not connect"):
        store.put_bytes("k", b"x")


def test_s3_resume_asks_for_the_missing_range_of_the_same_version(stubbed: Any, tmp_path: Path) -> None:
    client, stubber = stubbed("s3")
    data = b"0123456789"
    stubber.add_response("head_object", {"ContentLength": 10, "ETag": '"v1"'}, {"Bucket": BUCKET, "Key": "k"})
    stubber.add_response(
        "get_object",
        {"Body": _body(data[4:]), "ContentLength": 6, "ContentRange": "bytes 4-9/10"},
        {"Bucket": BUCKET, "Key": "k", "Range": "bytes=4-", "IfMatch": '"v1"'},
    )
    dest = tmp_path / "k"
    dest.write_bytes(data[:4])
    assert S3ObjectStore(client, BUCKET).download_file("k", dest) == 10
    assert dest.read_bytes() == data


def test_s3_a_server_ignoring_the_range_rewrites_the_file(stubbed: Any, tmp_path: Path) -> None:
    client, stubber = stubbed("s3")
    data = b"0123456789"
    stubber.add_response("head_object", {"ContentLength": 10, "ETag": '"v1"'})
    stubber.add_response("get_object", {"Body": _body(data), "ContentLength": 10})  # 200, no Content-Range
    dest = tmp_path / "k"
    dest.write_bytes(b"XXXX")
    S3ObjectStore(client, BUCKET).download_file("k", dest)
    assert dest.read_bytes() == data


def test_s3_an_object_changed_since_head_is_an_object_store_error(stubbed: Any, tmp_path: Path) -> None:
    client, stubber = stubbed("s3")
    stubber.add_response("head_object", {"ContentLength": 10, "ETag": '"v1"'})
    stubber.add_client_error("get_object", service_error_code="PreconditionFailed", http_status_code=412)
    with pytest.raises(ObjectStoreError, match="PreconditionFailed"):
        S3ObjectStore(client, BUCKET).download_file("k", tmp_path / "k")


# -- IotJobsControl --------------------------------------------------------------------------


def test_create_job_sends_the_document_as_json_and_omits_unset_configs(stubbed: Any) -> None:
    client, stubber = stubbed("iot")
    document = {"type": "new_model", "model_name": "unet", "model_version": "2"}
    stubber.add_response(
        "create_job",
        {"jobArn": "arn:aws:iot:us-east-1:123456789012:job/j1", "jobId": "j1"},
        {
            "jobId": "j1",
            "targets": ["arn:aws:iot:us-east-1:123456789012:thinggroup/g"],
            "document": json.dumps(document, separators=(",", ":")),
            "targetSelection": "CONTINUOUS",
            "timeoutConfig": {"inProgressTimeoutInMinutes": 5},
        },
    )
    spec = JobSpec(
        job_id="j1",
        targets=("arn:aws:iot:us-east-1:123456789012:thinggroup/g",),
        document=MappingProxyType(document),
        target_selection="CONTINUOUS",
        timeout=MappingProxyType({"inProgressTimeoutInMinutes": 5}),
    )
    assert IotJobsControl(client).create_job(spec) == {
        "jobArn": "arn:aws:iot:us-east-1:123456789012:job/j1",
        "jobId": "j1",
    }


@pytest.mark.parametrize(
    "code", ["ResourceNotFoundException", "InvalidStateTransitionException", "ThrottlingException"]
)
def test_iot_errors_carry_the_aws_code(stubbed: Any, code: str) -> None:
    client, stubber = stubbed("iot")
    stubber.add_client_error("cancel_job_execution", service_error_code=code, service_message="nope")
    with pytest.raises(JobsError, match="CancelJobExecution j1 on dev1 failed") as raised:
        IotJobsControl(client).cancel_job_execution("j1", "dev1", force=True)
    assert raised.value.code == code


def test_a_key_error_from_moto_in_process_is_an_internal_failure() -> None:
    class Broken:
        def cancel_job(self, **_: Any) -> None:
            raise KeyError("j1")

    with pytest.raises(JobsError) as raised:
        IotJobsControl(Broken()).cancel_job("j1")
    assert raised.value.code == INTERNAL_FAILURE


def test_iot_unreachable_endpoint_is_a_jobs_error_without_code() -> None:
    jobs = IotJobsControl(_client("iot", f"http://127.0.0.1:{_closed_port()}"))
    with pytest.raises(JobsError, match="DescribeJob j1 failed") as raised:
        jobs.describe_job("j1")
    assert raised.value.code == ""


# -- SageMakerModelRegistry ------------------------------------------------------------------


def test_registry_refuses_an_unknown_approval_without_calling(stubbed: Any) -> None:
    client, _ = stubbed("sagemaker")
    registry = SageMakerModelRegistry(client)
    version = ModelVersion("g", 1, "arn:aws:sagemaker:us-east-1:1:model-package/g/1", "s3://b/m", "Approved")
    with pytest.raises(RegistryError, match="approval must be one of"):
        registry.register("g", "s3://b/m", {}, approval="approved")
    with pytest.raises(RegistryError, match="approval must be one of"):
        registry.set_approval(version, "Yes")


@pytest.mark.parametrize(
    ("metrics", "message"),
    [({"bad{name}": 1.0}, "cannot be a SageMaker metadata key"), ({f"m{i}": 0.0 for i in range(51)}, "at most 50")],
)
def test_registry_refuses_metrics_sagemaker_cannot_store(stubbed: Any, metrics: dict[str, float], message: str) -> None:
    client, _ = stubbed("sagemaker")
    with pytest.raises(RegistryError, match=message):
        SageMakerModelRegistry(client).register("g", "s3://b/m", metrics)


def test_ensure_group_tolerates_a_group_created_concurrently(stubbed: Any) -> None:
    client, stubber = stubbed("sagemaker")
    stubber.add_client_error(
        "describe_model_package_group", service_error_code="ValidationException", service_message="g does not exist."
    )
    stubber.add_client_error(
        "create_model_package_group",
        service_error_code="ValidationException",
        service_message="Group g already exists.",
    )
    SageMakerModelRegistry(client).ensure_group("g")


def test_ensure_group_reports_other_failures(stubbed: Any) -> None:
    client, stubber = stubbed("sagemaker")
    stubber.add_client_error("describe_model_package_group", service_error_code="AccessDeniedException")
    with pytest.raises(RegistryError, match="DescribeModelPackageGroup g failed: AccessDeniedException"):
        SageMakerModelRegistry(client).ensure_group("g")


def test_a_non_numeric_metric_in_the_registry_is_a_registry_error(stubbed: Any) -> None:
    client, stubber = stubbed("sagemaker")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1"
    summary = {
        "ModelPackageArn": arn,
        "ModelPackageGroupName": "g",
        "ModelPackageVersion": 1,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
        "CreationTime": "2026-01-01T00:00:00Z",
    }
    stubber.add_response("list_model_packages", {"ModelPackageSummaryList": [summary]})
    stubber.add_response(
        "describe_model_package",
        {
            **summary,
            "ModelPackageName": "g",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "CustomerMetadataProperties": {"metric:accuracy": "high"},
        },
    )
    with pytest.raises(RegistryError, match="is not a number"):
        SageMakerModelRegistry(client).versions("g")
