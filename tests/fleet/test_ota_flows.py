"""Light devices run the device's OTA code: accepted, rejected and failed jobs, end to end.

Each test makes a small fleet on the module's fake cloud (virtual clock) and deploys jobs to it
through boto3 on moto, as an operator would; what a device did is read back from its folder (the
journal, models_config.json), its runtime and the cloud's executions.
"""

from __future__ import annotations

from simulators.fleet.runtime import RuntimeFaults
from system.edge.ota_machine import Outcome
from tests.fleet.fleet_kit import (
    MODEL,
    FleetKit,
    assert_serves_only,
    configured,
    finished,
    history_steps,
    loaded_versions,
    slow_download,
)

SUCCESS_STEPS = [
    "accepted",
    "download",
    "verify",
    "extract",
    "load",
    "health_check",
    "switch",
    "unload_old",
    "report",
]


def test_a_job_succeeds_on_every_device_through_every_step(kit: FleetKit) -> None:
    fleet = kit.fleet(3)
    job_id = kit.deploy(fleet, kit.document("1"))
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 3}
    assert fleet.job_status(job_id) == "COMPLETED"
    assert fleet.served() == {f"{MODEL} 1": 3}
    assert fleet.errors() == 0
    for device in fleet.devices:
        (state,) = finished(device, job_id)
        assert state.outcome is Outcome.SUCCEEDED and state.reason == ""
        assert history_steps(state) == SUCCESS_STEPS
        assert configured(device) == {MODEL: "1"}
        assert loaded_versions(device) == ["1"]
        assert not device.layout.download_path(job_id, 1).exists()  # the archive is cleaned up
        assert device.journal.current is None


def test_an_upgrade_unloads_and_removes_the_old_version(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    kit.install(fleet, "1")
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, kit.document("2"))
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 1}
    assert configured(device) == {MODEL: "2"} and loaded_versions(device) == ["2"]
    assert not device.layout.package_dir(MODEL, "1").exists()
    assert device.layout.package_dir(MODEL, "2").is_dir()
    (state,) = finished(device, job_id)
    assert state.previous is not None and state.previous.version == "1"


def test_a_model_the_device_does_not_serve_is_rejected_before_any_download(kit: FleetKit) -> None:
    fleet = kit.fleet(2)
    document = {**kit.document("1"), "model_name": "resnet"}
    job_id = kit.deploy(fleet, document)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"REJECTED": 2}
    for device in fleet.devices:
        (state,) = finished(device, job_id)
        assert state.outcome is Outcome.REJECTED and "not served by this device" in state.reason
        assert history_steps(state) == ["rejected", "report"]
        assert not device.layout.downloads.exists() or not any(device.layout.downloads.iterdir())
        assert device.link.resumes == 0 and device.runtime.loads == 0
        assert configured(device) == {}
    execution = kit.cloud.plane.describe_job_execution(job_id, fleet.devices[0].thing)["execution"]
    assert execution["statusDetails"]["detailsMap"]["outcome"] == "REJECTED"


def test_a_version_not_newer_than_the_serving_one_is_rejected(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    kit.install(fleet, "2")
    (device,) = fleet.devices
    for version in ("2", "1"):
        job_id = kit.deploy(fleet, kit.document(version))
        kit.run_job(fleet, job_id)
        assert fleet.counts(job_id) == {"REJECTED": 1}
        (state,) = finished(device, job_id)
        assert "not newer than the serving version 2" in state.reason
        assert "download" not in history_steps(state)
    assert configured(device) == {MODEL: "2"} and loaded_versions(device) == ["2"]


def test_a_load_failure_fails_the_job_and_the_old_version_keeps_serving(kit: FleetKit) -> None:
    fleet = kit.fleet(2, faults=lambda index: RuntimeFaults(fail_loads={"2"}) if index == 0 else None)
    kit.install(fleet, "1")
    broken, healthy = fleet.devices
    config_before = broken.layout.models_config.read_bytes()
    job_id = kit.deploy(fleet, kit.document("2"))
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"FAILED": 1, "SUCCEEDED": 1}
    (state,) = finished(broken, job_id)
    assert state.outcome is Outcome.FAILED
    assert state.reason.startswith("the agent could not load the model")
    assert history_steps(state)[-3:] == ["load", "rollback", "report"]
    assert broken.layout.models_config.read_bytes() == config_before
    assert broken.served() == {MODEL: "1"} and loaded_versions(broken) == ["1"]
    assert not broken.layout.package_dir(MODEL, "2").exists()  # the new files are removed
    assert healthy.served() == {MODEL: "2"}
    execution = kit.cloud.plane.describe_job_execution(job_id, broken.thing)["execution"]
    assert execution["statusDetails"]["detailsMap"]["reason"].startswith("the agent could not load")


def test_a_failed_health_check_rolls_back(kit: FleetKit) -> None:
    fleet = kit.fleet(1, faults=lambda _index: RuntimeFaults(bad_outputs={"2"}))
    kit.install(fleet, "1")
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, kit.document("2"))
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"FAILED": 1}
    (state,) = finished(device, job_id)
    assert state.reason.startswith("health check failed") and "non-finite" in state.reason
    assert configured(device) == {MODEL: "1"} and loaded_versions(device) == ["1"]


def test_a_corrupt_package_fails_verification(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    document = {**kit.document("1"), "sha256": "0" * 64}
    job_id = kit.deploy(fleet, document)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"FAILED": 1}
    (state,) = finished(fleet.devices[0], job_id)
    assert state.reason.startswith("package verification failed: sha256 mismatch")
    assert fleet.devices[0].runtime.loads == 0 and configured(fleet.devices[0]) == {}


def test_a_restarted_device_serves_what_models_config_names(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    kit.install(fleet, "1")
    (device,) = fleet.devices
    device.kill()
    assert device.runtime.list_models() == []
    device.start()
    assert device.startup.loaded == [f"{MODEL}-1"]
    assert device.served() == {MODEL: "1"} and loaded_versions(device) == ["1"]


def test_jobs_queued_together_run_one_after_the_other(kit: FleetKit) -> None:
    fleet = kit.fleet(2)
    first = kit.deploy(fleet, kit.document("1"))
    second = kit.deploy(fleet, kit.document("2"))
    other = kit.deploy(fleet, kit.document("1", model="unet"))
    for job_id in (first, second, other):
        kit.run_job(fleet, job_id)
        assert fleet.counts(job_id) == {"SUCCEEDED": 2}
    for device in fleet.devices:
        assert device.served() == {MODEL: "2", "unet": "1"}
        assert configured(device) == {MODEL: "2", "unet": "1"}
        assert loaded_versions(device) == ["2"] and loaded_versions(device, "unet") == ["1"]
        ends = [finished(device, job_id)[0].finished_at or 0.0 for job_id in (first, second)]
        assert 0.0 < ends[0] < ends[1]


def test_an_unusable_document_or_a_too_old_agent_is_rejected(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    (device,) = fleet.devices
    wrong_type = kit.deploy(fleet, {**kit.document("1"), "type": "reboot"})
    too_new = kit.deploy(fleet, {**kit.document("1"), "min_agent_version": "100"})
    for job_id, reason in ((wrong_type, "invalid job document"), (too_new, "needs agent 100 or newer")):
        kit.run_job(fleet, job_id)
        assert fleet.counts(job_id) == {"REJECTED": 1}
        (state,) = finished(device, job_id)
        assert reason in state.reason
    assert device.runtime.loads == 0 and configured(device) == {}


def test_a_missing_package_fails_the_download_at_once(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, {**kit.document("1"), "model_package_key": "light/no-such-package.tar.gz"})
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"FAILED": 1}
    (state,) = finished(device, job_id)
    assert state.reason.startswith("download failed: s3://") and state.reason.endswith("does not exist")
    assert device.link.cuts == 0 and device.runtime.loads == 0


def test_a_download_cut_at_every_attempt_fails_after_the_attempt_limit(kit: FleetKit) -> None:
    document = kit.document("2")
    fleet = kit.fleet(1, settings=slow_download(document["size"], 60.0))
    kit.install(fleet, "1")
    (device,) = fleet.devices
    now = kit.clock.now()
    for second in range(10, 600, 10):  # the object store drops the link for a second every ten
        device.link.add_outage(now + second, now + second + 1)
    job_id = kit.deploy(fleet, document)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"FAILED": 1}
    (state,) = finished(device, job_id)
    attempts = fleet.settings.limits.download_attempts
    assert state.reason.endswith(f"(after {attempts} attempts)")
    assert device.link.cuts == attempts
    assert not device.layout.download_path(job_id, 1).exists()  # the rollback removes the partial file
    assert_serves_only(device, "1")
