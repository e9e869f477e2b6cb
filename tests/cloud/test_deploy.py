"""Upload and deploy against the simulated cloud (moto in-process): versioned keys, the job, its settings.

The packages here are small hand-made folders archived like real ones: what is under test is where
they go and what the job says about them, not the model (test_edge_package.py covers that).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulators.cloud import SimulatedCloud
from system.cloud.deploy import DeploymentConfig, deploy, deploy_report, job_document
from system.cloud.edge_package import PackageReport, PackageVariant, archive_name, archive_package, upload_packages
from system.edge.archive import extract_package
from system.edge.job_document import JobDocumentError, parse_job_document
from system.errors import ConfigError
from system.signing import file_sha256, sign_digest, verify_digest

ROLLOUT = {
    "maximumPerMinute": 50,
    "exponentialRate": {
        "baseRatePerMinute": 5,
        "incrementFactor": 2.0,
        "rateIncreaseCriteria": {"numberOfSucceededThings": 2},
    },
}
ABORT = {
    "criteriaList": [
        {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 25.0, "minNumberOfExecutedThings": 2}
    ]
}
TIMEOUT = {"inProgressTimeoutInMinutes": 30}


@pytest.fixture(scope="module")
def cloud() -> Iterator[SimulatedCloud]:
    with SimulatedCloud("fake") as started:
        yield started


def _report(workdir: Path, name: str, version: str, key: Ed25519PrivateKey | None) -> PackageReport:
    """A report as build_edge_packages makes it, for two small archived folders."""
    variants = []
    for framework, quantization in (("tensorflow", "none"), ("tflite", "int8")):
        folder = workdir / f"{framework}-{version}"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"framework": framework, "version": version}))
        (folder / "model.bin").write_bytes(f"{framework} {version}".encode() * 100)
        file_name = archive_name(name, version, framework, quantization)
        archive = archive_package(folder, workdir / file_name)
        digest = file_sha256(archive)
        variants.append(
            PackageVariant(
                framework=framework,
                quantization=quantization,
                archive=file_name,
                sha256=digest,
                size_bytes=archive.stat().st_size,
                model_size_bytes=1200,
                latency_ms=1.0,
                output_max_abs_diff=0.0,
                signature=sign_digest(key, digest) if key is not None else None,
                archive_path=archive,
                package_dir=folder,
            )
        )
    return PackageReport(name=name, version=version, variants=variants)


def _registry_version(cloud: SimulatedCloud) -> str:
    """The next version of the project's classifier group: the package's version comes from the registry."""
    group = cloud.project.registry_groups[0]
    return str(cloud.registry().register(group, f"s3://{cloud.project.bucket}/train/model.tar.gz", {}).version)


def test_upload_puts_archives_and_report_under_versioned_keys(cloud: SimulatedCloud, tmp_path: Path) -> None:
    store, bucket = cloud.object_store(), cloud.project.bucket
    first = _registry_version(cloud)
    second = _registry_version(cloud)
    assert int(second) == int(first) + 1
    reports = {}
    for version in (first, second):
        local = _report(tmp_path / version, "img-classification", version, None)
        reports[version] = upload_packages(local, store, bucket)
    for version, report in reports.items():
        prefix = f"models/img-classification/{version}/"
        assert sorted(store.list_keys(prefix)) == sorted(
            prefix + name
            for name in (
                f"img-classification-{version}.tar.gz",
                f"img-classification-{version}-tflite-int8.tar.gz",
                "package-report.json",
            )
        )
        for variant in report.variants:
            assert variant.key == prefix + variant.archive
            assert store.get_bytes(variant.key) == variant.archive_path.read_bytes()  # type: ignore[union-attr]
        uploaded = json.loads(store.get_bytes(prefix + "package-report.json"))
        assert uploaded == report.to_dict()
        assert uploaded["bucket"] == bucket and uploaded["report_key"] == prefix + "package-report.json"
        assert [v["key"] for v in uploaded["variants"]] == [v.key for v in report.variants]


def test_upload_refuses_a_store_of_another_bucket(cloud: SimulatedCloud, tmp_path: Path) -> None:
    report = _report(tmp_path, "img-classification", "1", None)
    with pytest.raises(ValueError, match="bucket"):
        upload_packages(report, cloud.object_store(), "some-other-bucket")


def test_deployed_job_document_is_one_the_device_accepts(cloud: SimulatedCloud, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    version = _registry_version(cloud)
    report = upload_packages(
        _report(tmp_path / "build", "img-classification", version, key), cloud.object_store(), cloud.project.bucket
    )
    jobs = cloud.jobs_control()
    config = DeploymentConfig(variant="tflite")
    job_id = deploy_report(jobs, report, targets=[cloud.project.thing_group_arn], config=config)
    assert re.fullmatch(rf"img-classification-{version}-[0-9a-f]{{8}}", job_id)
    described = jobs.describe_job(job_id)
    assert described["targets"] == [cloud.project.thing_group_arn]
    document = json.loads(cloud.client("iot").get_job_document(jobId=job_id)["document"])
    update = parse_job_document(document)
    variant = report.variant("tflite")
    assert (update.model_name, update.version.text, update.bucket, update.key) == (
        "img-classification",
        version,
        cloud.project.bucket,
        variant.key,
    )
    assert (update.sha256, update.size) == (variant.sha256, variant.size_bytes)
    # What the device's DOWNLOAD, VERIFY and EXTRACT steps do with it.
    download = tmp_path / "download.tar.gz"
    assert cloud.object_store(update.bucket).download_file(update.key, download) == update.size
    assert file_sha256(download) == update.sha256
    assert update.signature is not None
    verify_digest(key.public_key(), update.signature, file_sha256(download))
    assert (extract_package(download, tmp_path / "model" / "dev" / "img-classification" / version)).is_dir()


def test_rollout_abort_and_timeout_reach_the_job(cloud: SimulatedCloud) -> None:
    config = DeploymentConfig.from_dict(
        {
            "variant": "tensorflow",
            "rollout": ROLLOUT,
            "abort": ABORT,
            "timeout": TIMEOUT,
            "target_selection": "CONTINUOUS",
        }
    )
    jobs = cloud.jobs_control()
    job_id = deploy(
        jobs,
        model_name="unet",
        version="1.2",
        bucket=cloud.project.bucket,
        key="models/unet/1.2/unet-1.2.tar.gz",
        sha256="a" * 64,
        size=1234,
        signature=None,
        targets=[cloud.project.thing_group_arn],
        config=config,
    )
    assert re.fullmatch(r"unet-1-2-[0-9a-f]{8}", job_id)
    described = jobs.describe_job(job_id)
    assert described["targetSelection"] == "CONTINUOUS"
    assert described["timeoutConfig"] == TIMEOUT
    document = json.loads(cloud.client("iot").get_job_document(jobId=job_id)["document"])
    assert "signature" not in document and parse_job_document(document).identifier == "unet-1-2"
    # moto's DescribeJob drops rollout and abort; the jobs plane (what rolls the job out) has them all.
    planned = cloud.plane.describe_job(job_id)["job"]
    assert planned["jobExecutionsRolloutConfig"] == ROLLOUT
    assert planned["abortConfig"] == ABORT
    assert planned["timeoutConfig"] == TIMEOUT


def test_job_document_has_the_seed_fields_then_integrity_fields() -> None:
    signature = base64.b64encode(bytes(64)).decode()
    document = job_document("unet", "3", "sm-edge-workshop-x", "models/unet/3/unet-3.tar.gz", "b" * 64, 99, signature)
    assert document == {
        "type": "new_model",
        "model_name": "unet",
        "model_version": "3",
        "model_package_bucket": "sm-edge-workshop-x",
        "model_package_key": "models/unet/3/unet-3.tar.gz",
        "sha256": "b" * 64,
        "size": 99,
        "signature": signature,
    }
    assert parse_job_document(document).signature == bytes(64)
    assert "signature" not in job_document("unet", "3", "sm-edge-workshop-x", "k", "b" * 64, 99, None)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"sha256": "xyz"}, "sha256"),
        ({"version": "v2"}, "version"),
        ({"bucket": "Not_A_Bucket"}, "bucket"),
        ({"size": 0}, "size"),
        ({"signature": "not base64"}, "signature"),
    ],
)
def test_job_document_the_device_would_reject_is_refused(fields: dict[str, Any], reason: str) -> None:
    values: dict[str, Any] = {
        "model_name": "unet",
        "version": "3",
        "bucket": "sm-edge-workshop-x",
        "key": "k",
        "sha256": "b" * 64,
        "size": 1,
        "signature": None,
    }
    values.update(fields)
    with pytest.raises(JobDocumentError, match=reason):
        job_document(**values)


def test_deploy_needs_targets_and_uploaded_packages(cloud: SimulatedCloud, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="target"):
        deploy(
            cloud.jobs_control(),
            model_name="unet",
            version="1",
            bucket=cloud.project.bucket,
            key="k",
            sha256="a" * 64,
            size=1,
            signature=None,
            targets=[],
            config=DeploymentConfig(),
        )
    report = _report(tmp_path, "unet", "1", None)
    with pytest.raises(ConfigError, match="upload"):
        deploy_report(cloud.jobs_control(), report, targets=[cloud.project.thing_group_arn], config=DeploymentConfig())


def test_config_round_trips_through_its_dict() -> None:
    config = DeploymentConfig.from_dict({"variant": "tflite", "rollout": {"maximumPerMinute": 10}, "timeout": TIMEOUT})
    assert DeploymentConfig.from_dict(config.to_dict()) == config
    assert DeploymentConfig.from_dict({}) == DeploymentConfig()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"varient": "tflite"}, "unknown key"),
        ({"variant": "onnx"}, "variant"),
        ({"target_selection": "ALL"}, "target_selection"),
        ({"rollout": {}}, "maximumPerMinute or exponentialRate"),
        ({"rollout": {"maximumPerMinute": 0}}, "maximumPerMinute"),
        ({"rollout": {"maxPerMinute": 5}}, "unknown key"),
        ({"rollout": {"exponentialRate": {"baseRatePerMinute": 5}}}, "missing"),
        ({"rollout": {"exponentialRate": {**ROLLOUT["exponentialRate"], "incrementFactor": 9}}}, "incrementFactor"),  # type: ignore[dict-item]
        ({"rollout": [1]}, "must be an object"),
        ({"abort": {"criteriaList": []}}, "at least one"),
        ({"abort": {"criteriaList": [{**ABORT["criteriaList"][0], "action": "STOP"}]}}, "CANCEL"),
        ({"abort": {"criteriaList": [{"failureType": "FAILED"}]}}, "missing"),
        ({"abort": {"criteriaList": [{**ABORT["criteriaList"][0], "thresholdPercentage": 101}]}}, "threshold"),
        ({"timeout": {"inProgressTimeoutInMinutes": 20000}}, "inProgressTimeoutInMinutes"),
        ({"timeout": {"inProgressTimeoutMinutes": 5}}, "unknown key"),
    ],
)
def test_config_errors_name_the_problem(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        DeploymentConfig.from_dict(raw)
