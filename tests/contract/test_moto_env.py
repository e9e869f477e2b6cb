"""MotoEnvironment in both modes: seeding, least-privilege policy, reset, isolation from ~/.aws."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable

import pytest

from simulators.moto_env import MotoEnvironment, MotoEnvironmentError
from simulators.moto_seed import CERTIFICATE_KEY, SeededProject
from system.errors import ConfigError


def _project(unique_name: Callable[[str], str]) -> str:
    return unique_name("p")  # short: the bucket name must stay within 63 characters


def test_seed_project_creates_the_seed_resources(moto_env: MotoEnvironment, unique_name: Callable[[str], str]) -> None:
    project = _project(unique_name)
    seeded = moto_env.seed_project(project)
    account = moto_env.account_id
    assert seeded.bucket == f"sm-edge-workshop-{project}-{account}"
    s3, iot, sagemaker = moto_env.client("s3"), moto_env.client("iot"), moto_env.client("sagemaker")
    assert s3.get_bucket_versioning(Bucket=seeded.bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=seeded.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert seeded.thing_name == f"edge-device-{project}"
    assert seeded.thing_group_name == f"defect-detection-{project}-group"
    assert iot.list_things_in_thing_group(thingGroupName=seeded.thing_group_name)["things"] == [seeded.thing_name]
    certificate = iot.describe_certificate(certificateId=seeded.certificate_id)["certificateDescription"]
    assert certificate["status"] == "ACTIVE"
    assert certificate["certificatePem"] == seeded.certificate_pem
    assert iot.list_thing_principals(thingName=seeded.thing_name)["principals"] == [seeded.certificate_arn]
    policies = iot.list_attached_policies(target=seeded.certificate_arn)["policies"]
    assert [p["policyName"] for p in policies] == [seeded.policy_name]
    assert seeded.private_key_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert seeded.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert seeded.registry_groups == (
        f"defect-detection-img-classification-{project}",
        f"defect-detection-semantic-segmentation-{project}",
    )
    for group in seeded.registry_groups:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)


def test_seed_project_is_idempotent(moto_env: MotoEnvironment, unique_name: Callable[[str], str]) -> None:
    project = _project(unique_name)
    first = moto_env.seed_project(project)
    second = moto_env.seed_project(project)
    assert second == first
    iot, sagemaker = moto_env.client("iot"), moto_env.client("sagemaker")
    assert iot.list_thing_principals(thingName=first.thing_name)["principals"] == [first.certificate_arn]
    assert iot.list_things_in_thing_group(thingGroupName=first.thing_group_name)["things"] == [first.thing_name]
    certificates = [c["certificateArn"] for c in iot.list_certificates()["certificates"]]
    assert certificates.count(first.certificate_arn) == 1
    assert len(iot.list_policy_versions(policyName=first.policy_name)["policyVersions"]) == 1
    groups = [g["ModelPackageGroupName"] for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]]
    assert sorted(g for g in groups if g.endswith(project)) == sorted(first.registry_groups)


def test_seed_project_replaces_a_certificate_it_can_no_longer_read(
    moto_env: MotoEnvironment, unique_name: Callable[[str], str]
) -> None:
    first = moto_env.seed_project(_project(unique_name))
    moto_env.client("s3").delete_object(Bucket=first.bucket, Key=CERTIFICATE_KEY.format(thing=first.thing_name))
    second = moto_env.seed_project(first.project)
    assert second.certificate_id != first.certificate_id
    assert (
        second.certificate_arn in moto_env.client("iot").list_thing_principals(thingName=first.thing_name)["principals"]
    )


def test_seeded_policy_is_least_privilege(moto_env: MotoEnvironment, unique_name: Callable[[str], str]) -> None:
    seeded: SeededProject = moto_env.seed_project(_project(unique_name))
    stored = moto_env.client("iot").get_policy(policyName=seeded.policy_name)["policyDocument"]
    document = json.loads(stored)
    assert document == json.loads(seeded.policy_document)
    thing = seeded.thing_name
    prefix = f"arn:aws:iot:{seeded.region}:{seeded.account_id}"
    grants = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            grants.setdefault(action, set()).update(resources)
    assert grants == {
        "iot:Connect": {f"{prefix}:client/{thing}"},
        "iot:Publish": {f"{prefix}:topic/$aws/things/{thing}/*", f"{prefix}:topic/edgesim/{thing}/telemetry/*"},
        "iot:Receive": {f"{prefix}:topic/$aws/things/{thing}/*"},
        "iot:Subscribe": {f"{prefix}:topicfilter/$aws/things/{thing}/*"},
    }
    assert "$aws/*" not in stored
    assert '"*"' not in stored


def test_seed_project_refuses_a_name_the_bucket_cannot_carry(moto_env: MotoEnvironment) -> None:
    with pytest.raises(ConfigError):
        moto_env.seed_project("Not_Valid")
    with pytest.raises(ConfigError):
        moto_env.seed_project("x" * 34)


def test_reset_forgets_every_resource(moto_env: MotoEnvironment, unique_name: Callable[[str], str]) -> None:
    seeded = moto_env.seed_project(_project(unique_name))
    moto_env.reset()
    buckets = [b["Name"] for b in moto_env.client("s3").list_buckets()["Buckets"]]
    assert seeded.bucket not in buckets
    things = [t["thingName"] for t in moto_env.client("iot").list_things()["things"]]
    assert seeded.thing_name not in things


def test_iot_backend_is_the_state_boto3_reads(moto_env: MotoEnvironment, unique_name: Callable[[str], str]) -> None:
    iot = moto_env.client("iot")
    thing = unique_name("edge-device")
    arn = iot.create_thing(thingName=thing)["thingArn"]
    job_id = unique_name("job")
    iot.create_job(jobId=job_id, targets=[arn], document="{}")
    execution = moto_env.iot_backend().job_executions[(job_id, thing)]
    execution.status = "IN_PROGRESS"
    execution.status_details_map = {"step": "downloading"}
    described = iot.describe_job_execution(jobId=job_id, thingName=thing)["execution"]
    assert described["status"] == "IN_PROGRESS"
    assert described["statusDetails"]["detailsMap"] == {"step": "downloading"}


def test_clients_ignore_the_real_aws_configuration(
    moto_env: MotoEnvironment, monkeypatch: pytest.MonkeyPatch, unique_name: Callable[[str], str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "a-profile-nobody-has")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    client = moto_env.client("s3")
    bucket = unique_name("bucket")
    client.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert client.meta.region_name == "us-east-1"


def test_an_unstarted_environment_refuses_clients() -> None:
    env = MotoEnvironment("server")
    with pytest.raises(MotoEnvironmentError):
        env.client("s3")
    with pytest.raises(MotoEnvironmentError):
        MotoEnvironment("cloud")


def test_server_mode_serves_real_http_on_loopback(moto_server: MotoEnvironment) -> None:
    assert moto_server.endpoint_url is not None
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")
    assert not moto_server.endpoint_url.endswith(":0")
    with urllib.request.urlopen(f"{moto_server.endpoint_url}/moto-api/data.json", timeout=5) as response:
        assert response.status == 200


def test_a_busy_port_fails_fast_instead_of_hanging() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = MotoEnvironment("server", port=busy.getsockname()[1])
        with pytest.raises(MotoEnvironmentError, match="cannot serve moto"):
            env.start()
    assert not env.started
