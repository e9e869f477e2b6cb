"""Where a pipeline keeps its artifacts and registers and deploys models, per profile.

- `fake`: a simulated cloud inside the command's process (from `simulators/`, through the
  `edgesim.cloud_profiles` entry point); it vanishes with the process, so the run's reports are
  also written to a local folder (`--out`).
- `local`: the moto server of `edgesim cloud up`: `--cloud .edgesim/cloud/cloud.json` gives the
  endpoint, bucket, model package groups and thing group.
- `aws`: boto3's default credentials and region; `--bucket` and `--project` name the resources
  the seed's stack created (`defect-detection-<task>-<project>` groups, `defect-detection-<project>-group`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from system.errors import ConfigError
from system.ports import JobsControl, ModelRegistry

TASK_GROUP = {"classification": "img-classification", "segmentation": "semantic-segmentation"}


@dataclass
class CloudBackends:
    store: Any  # ObjectStore & FileTransfer on `bucket`
    bucket: str
    registry: ModelRegistry
    jobs: JobsControl
    groups: dict[str, str]  # task -> model package group
    targets: list[str]  # default deployment targets (thing group ARNs)
    closers: list[Callable[[], None]] = field(default_factory=list)
    session: Any = None  # a boto3 Session for SDKs that make their own clients (the SageMaker SDK)
    endpoint_url: str | None = None  # where that session's clients must go (moto server); None for AWS

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()


def _boto3_backends(
    session: Any, endpoint_url: str | None, bucket: str, groups: dict[str, str], targets: list[str]
) -> CloudBackends:
    from system.adapters.iot_jobs_control import IotJobsControl
    from system.adapters.s3_object_store import S3ObjectStore
    from system.adapters.sagemaker_registry import SageMakerModelRegistry

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)

    return CloudBackends(
        store=S3ObjectStore(client("s3"), bucket),
        bucket=bucket,
        registry=SageMakerModelRegistry(client("sagemaker")),
        jobs=IotJobsControl(client("iot")),
        groups=groups,
        targets=targets,
        session=session,
        endpoint_url=endpoint_url,
    )


def build_cloud_backends(
    profile: str,
    *,
    cloud_file: Path | None = None,
    bucket: str | None = None,
    project: str | None = None,
    region: str | None = None,
) -> CloudBackends:
    if profile == "fake":
        found = [ep for ep in entry_points(group="edgesim.cloud_profiles") if ep.name == "fake"]
        if not found:
            raise ConfigError("the fake profile needs edgesim's simulators (entry point edgesim.cloud_profiles)")
        fake: CloudBackends = found[0].load()()
        return fake
    import boto3

    if cloud_file is not None:
        try:
            summary = json.loads(cloud_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {cloud_file}: {exc}") from exc
        session = boto3.Session(
            aws_access_key_id=summary["credentials"]["aws_access_key_id"],
            aws_secret_access_key=summary["credentials"]["aws_secret_access_key"],
            region_name=summary["region"],
        )
        groups = dict(zip(("classification", "segmentation"), summary["registry_groups"], strict=True))
        return _boto3_backends(
            session, summary["moto_endpoint"], bucket or summary["bucket"], groups, [summary["thing_group_arn"]]
        )
    if profile == "local":
        raise ConfigError("the local profile needs --cloud .edgesim/cloud/cloud.json (written by edgesim cloud up)")
    if not bucket or not project:
        raise ConfigError("the aws profile needs --bucket and --project (the seed stack's names)")
    session = boto3.Session(region_name=region)
    groups = {task: f"defect-detection-{name}-{project}" for task, name in TASK_GROUP.items()}
    account = session.client("sts").get_caller_identity()["Account"]
    partition = session.get_partition_for_region(session.region_name)
    target = f"arn:{partition}:iot:{session.region_name}:{account}:thinggroup/defect-detection-{project}-group"
    return _boto3_backends(session, None, bucket, groups, [target])
