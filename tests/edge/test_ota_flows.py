"""OTA end to end on a simulated cloud with a real agent and real small TF models.

Every flow of the issue: first deployment, upgrade, downgrade and unknown model REJECTED, corrupt
archive, tampered sha256, `../` entries, a model failing its health check (rolled back with no
failed inference), the same job twice. `world` runs on the fake profile, and the main flows also
on `local` (Mosquitto and the moto server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from system.edge.device import DeviceApp
from tests.edge_world import EdgeWorld, tar_folder

# Every flow on both profiles: in-process fakes, and Mosquitto + the moto server over loopback.
pytestmark = pytest.mark.parametrize("world", ["fake", "local"], indirect=True)


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_consistent(world: EdgeWorld, device: DeviceApp, expected: dict[str, str]) -> None:
    """models_config.json, the roster and the agent all name exactly `expected` (name -> version)."""
    config = json.loads(device.layout.models_config.read_text())
    assert {m["name"]: m["version"] for m in config["models"]} == expected
    assert {m.name: m.version for m in device.roster.all()} == expected
    identifiers = {m["identifier"] for m in config["models"]}
    assert {m.name for m in device.backends.client.list_models()} == identifiers


def reason(execution: dict[str, object]) -> str:
    details = execution.get("statusDetails") or {}  # boto3's DescribeJobExecution: {"detailsMap": {...}}
    assert isinstance(details, dict)
    return str(details.get("detailsMap", {}).get("reason", ""))


def deploy_and_wait(world: EdgeWorld, document: dict[str, object]) -> dict[str, object]:
    return world.wait_job(world.deploy(document))


def test_first_deployment_then_upgrade_serve_the_new_versions(world: EdgeWorld) -> None:
    device = world.start_device()
    assert device.roster.all() == []
    first = deploy_and_wait(world, world.document("img-classification", "1"))
    assert first["status"] == "SUCCEEDED", first
    second = deploy_and_wait(world, world.document("unet", "1"))
    assert second["status"] == "SUCCEEDED", second
    assert_consistent(world, device, {"img-classification": "1", "unet": "1"})
    eventually(lambda: (r := device.latest_result()) is not None and r.segmentation is not None, what="a mask")
    upgrade = deploy_and_wait(world, world.document("img-classification", "1.10"))
    assert upgrade["status"] == "SUCCEEDED", upgrade
    assert_consistent(world, device, {"img-classification": "1.10", "unet": "1"})
    assert not device.layout.package_dir("img-classification", "1").exists()
    # The device journals a job as finished just after reporting it: the cloud may say SUCCEEDED first.
    eventually(lambda: [j["status"] for j in device.jobs()] == ["SUCCEEDED"] * 3, what="three finished jobs")


def test_downgrade_and_unknown_model_are_rejected_with_a_reason(world: EdgeWorld) -> None:
    device = world.start_device()
    assert deploy_and_wait(world, world.document("img-classification", "1.10"))["status"] == "SUCCEEDED"
    downgrade = deploy_and_wait(world, world.document("img-classification", "1.9"))
    assert downgrade["status"] == "REJECTED"
    assert "not newer than the serving version 1.10" in reason(downgrade)
    unknown = deploy_and_wait(world, world.document("yolo", "1", kind="img-classification"))
    assert unknown["status"] == "REJECTED" and "'yolo' is not served" in reason(unknown)
    assert_consistent(world, device, {"img-classification": "1.10"})


def test_unparsable_version_is_rejected(world: EdgeWorld) -> None:
    world.start_device()
    execution = deploy_and_wait(world, world.document("img-classification", "v2", kind="img-classification"))
    assert execution["status"] == "REJECTED" and "cannot be ordered" in reason(execution)


def _serving_v1(world: EdgeWorld) -> DeviceApp:
    device = world.start_device()
    assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
    return device


def test_corrupt_archive_fails_and_the_old_model_keeps_serving(world: EdgeWorld) -> None:
    device = _serving_v1(world)
    execution = deploy_and_wait(world, world.document("img-classification", "2", archive=b"\x1f\x8bnot a tarball" * 50))
    assert execution["status"] == "FAILED" and "extraction failed" in reason(execution)
    assert_consistent(world, device, {"img-classification": "1"})
    assert not device.layout.package_dir("img-classification", "2").exists()


def test_tampered_sha256_fails_before_extraction(world: EdgeWorld) -> None:
    device = _serving_v1(world)
    execution = deploy_and_wait(world, world.document("img-classification", "2", sha256="0" * 64))
    assert execution["status"] == "FAILED" and "sha256 mismatch" in reason(execution)
    assert_consistent(world, device, {"img-classification": "1"})
    assert not device.layout.package_dir("img-classification", "2").exists()


def test_archive_with_dot_dot_entries_is_refused_and_writes_nothing_outside(world: EdgeWorld) -> None:
    device = _serving_v1(world)
    folder = world.packages.folder("img-classification", "2")
    archive = tar_folder(folder, extra={"../../escaped.txt": b"owned"})
    execution = deploy_and_wait(world, world.document("img-classification", "2", archive=archive))
    assert execution["status"] == "FAILED" and "'..'" in reason(execution)
    assert not list(device.layout.root.parent.rglob("escaped.txt"))
    assert_consistent(world, device, {"img-classification": "1"})


def test_missing_package_object_fails_with_its_location(world: EdgeWorld) -> None:
    device = _serving_v1(world)
    document = world.document("img-classification", "2")
    document["model_package_key"] = "models/nothing-here.tar.gz"
    execution = deploy_and_wait(world, document)
    assert execution["status"] == "FAILED" and "nothing-here.tar.gz does not exist" in reason(execution)
    assert_consistent(world, device, {"img-classification": "1"})


def test_model_failing_its_health_check_is_rolled_back_with_no_failed_inference(world: EdgeWorld) -> None:
    device = _serving_v1(world)
    eventually(lambda: device.engine.count > 5, what="inferences on v1")
    errors_before = device.engine.errors + device.loop.errors
    latest = device.latest_result()
    assert latest is not None
    execution = deploy_and_wait(world, world.document("img-classification", "2", kind="broken"))
    assert execution["status"] == "FAILED" and "health check failed" in reason(execution)
    assert "non-finite" in reason(execution)
    count = device.engine.count
    eventually(lambda: device.engine.count > count + 5, what="inferences after the rollback")
    assert device.engine.errors + device.loop.errors == errors_before
    during = [r for r in device.engine.recent(50) if r.sequence > latest.sequence]
    assert during and all(r.classification is not None and r.classification.version == "1" for r in during)
    assert_consistent(world, device, {"img-classification": "1"})
    assert not device.layout.package_dir("img-classification", "2").exists()


def test_upgrade_under_continuous_inference_fails_no_inference(world: EdgeWorld) -> None:
    device = _serving_v1(world)
    eventually(lambda: device.engine.count > 5, what="inferences on v1")
    for version in ("2", "3"):
        assert deploy_and_wait(world, world.document("img-classification", version))["status"] == "SUCCEEDED"
    count = device.engine.count
    eventually(lambda: device.engine.count > count + 5, what="inferences on v3")
    assert device.engine.errors + device.loop.errors == 0
    latest = device.latest_result()
    assert latest is not None and latest.classification is not None and latest.classification.version == "3"


def test_the_same_job_delivered_twice_is_handled_once(world: EdgeWorld) -> None:
    device = _serving_v1(world)
    job_id = world.deploy(world.document("img-classification", "2"))
    assert world.wait_job(job_id)["status"] == "SUCCEEDED"
    # Deliver it again: a notify-next and a start-next replay, as after a lost reply.
    device.driver.poke()
    device.driver.on_notify_next({"execution": {"jobId": job_id}})
    time.sleep(0.5)
    assert [j["job_id"] for j in device.jobs()].count(job_id) == 1
    executions = world.jobs.describe_job_execution(job_id, world.thing)
    assert executions["status"] == "SUCCEEDED"
    assert_consistent(world, device, {"img-classification": "2"})


def test_jobs_queued_while_offline_run_one_at_a_time_in_order(world: EdgeWorld) -> None:
    job_ids = [world.deploy(world.document("img-classification", v)) for v in ("1", "2", "1.5", "3")]
    device = world.start_device()
    outcomes = [world.wait_job(job_id)["status"] for job_id in job_ids]
    assert outcomes == ["SUCCEEDED", "SUCCEEDED", "REJECTED", "SUCCEEDED"]
    history = list(reversed(device.jobs()))
    assert [j["job_id"] for j in history] == job_ids
    starts = [j["started_at"] for j in history]
    finishes = [j["finished_at"] for j in history]
    assert all(finishes[i] <= starts[i + 1] for i in range(len(job_ids) - 1))
    assert_consistent(world, device, {"img-classification": "3"})
