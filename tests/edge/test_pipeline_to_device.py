"""From training to a device: the pipeline registers a model, `deploy` makes the IoT job, a real device
on the same simulated cloud installs the package and classifies camera frames with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.cloud_profile import cloud_backends
from simulators.surfaces import write_dataset
from system.cloud.deploy import DeploymentConfig, deploy_report
from system.cloud.edge_package import PackageReport
from system.cloud.pipeline.pipelines import PipelineOptions, run_pipeline
from system.cloud.pipeline.progress import Progress
from tests.edge.test_ota_flows import eventually
from tests.edge_world import EdgeWorld

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("variant", ["tensorflow", "tflite"])
def test_a_pipeline_version_deployed_to_the_thing_group_serves_on_the_device(
    world: EdgeWorld, tmp_path: Path, variant: str
) -> None:
    data = tmp_path / "data"
    write_dataset(data, 60, 20, defect_rate=0.3, seed=5, size=(64, 160))
    backends = cloud_backends(world.cloud)
    options = PipelineOptions(
        "classification", data=data, epochs=3, image_size=48, gate={"min_anomalous_f1": 0.0, "min_roc_auc": None}
    )
    result = run_pipeline(options, backends, tmp_path / "work", Progress(enabled=False))
    report_key = f"models/img-classification/{result.version}/package-report.json"
    report = PackageReport.from_dict(json.loads(backends.store.get_bytes(report_key)))

    device = world.start_device()
    job_id = deploy_report(backends.jobs, report, targets=backends.targets, config=DeploymentConfig(variant=variant))
    execution = world.wait_job(job_id)
    assert execution["status"] == "SUCCEEDED", execution
    [serving] = device.roster.all()
    assert (serving.name, serving.version, serving.manifest.framework) == ("img-classification", "1", variant)
    assert serving.manifest.preprocessing.height == 48
    eventually(lambda: (r := device.latest_result()) is not None and r.classification is not None, what="a verdict")
