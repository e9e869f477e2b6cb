"""The `fake` profile of `edgesim pipeline`: a simulated cloud (moto in-process) for one command.

Registered as the `edgesim.cloud_profiles` entry point `fake`. Limitation: the simulated cloud
lives and dies with the command, so what it registers and stores is gone afterwards; the pipeline
also writes its reports to a local folder.
"""

from __future__ import annotations

from simulators.cloud import SimulatedCloud
from simulators.moto_env import offline_session
from system.cloud.pipeline.backends import CloudBackends


def cloud_backends(cloud: SimulatedCloud) -> CloudBackends:
    """A pipeline's backends on a started simulated cloud (its project bucket, groups and thing group)."""
    project = cloud.project
    return CloudBackends(
        store=cloud.object_store(),
        bucket=project.bucket,
        registry=cloud.registry(),
        jobs=cloud.jobs_control(),
        groups=dict(zip(("classification", "segmentation"), project.registry_groups, strict=True)),
        targets=[project.thing_group_arn],
        session=offline_session(cloud.region),
        endpoint_url=cloud.endpoint_url,
    )


def fake_cloud_backends() -> CloudBackends:
    cloud = SimulatedCloud("fake").start()
    backends = cloud_backends(cloud)
    backends.closers.append(cloud.stop)
    return backends
