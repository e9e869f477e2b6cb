"""Light devices when the cloud or the network misbehaves: cancel, step timeout, partitions, a
broker restart, lost replies. Each fault is timed by the device's journal or planned on the clock.
"""

from __future__ import annotations

import pytest

from simulators.fleet.light_device import LightSettings
from simulators.fleet.runtime import RuntimeFaults
from system.edge.ota_machine import JobState, Outcome, Step
from tests.fleet.fleet_kit import (
    MODEL,
    FleetKit,
    assert_serves_only,
    finished,
    history_steps,
    slow_download,
    terminal_updates,
    when_step,
)

DOWNLOAD_SECONDS = 60.0  # how long the slow downloads take


def test_a_job_canceled_during_the_download_is_rolled_back_without_a_report(kit: FleetKit) -> None:
    document = kit.document("2")
    fleet = kit.fleet(1, settings=slow_download(document["size"], DOWNLOAD_SECONDS))
    kit.install(fleet, "1")
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, document)
    jobs = kit.cloud.jobs_control()

    def cancel_soon(_state: JobState) -> None:
        kit.clock.call_later(DOWNLOAD_SECONDS / 3, lambda: jobs.cancel_job_execution(job_id, device.thing, force=True))

    when_step(fleet, device, job_id, Step.DOWNLOAD, cancel_soon)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"CANCELED": 1}
    (state,) = finished(device, job_id)
    assert state.outcome is Outcome.FAILED and not state.report
    assert state.reason == "the job ended in the cloud as CANCELED"
    steps = history_steps(state)
    assert steps[steps.index("cloud") :] == ["cloud", "rollback", "report"]
    assert "load" not in steps
    assert terminal_updates(kit.cloud, device, job_id) == []
    assert_serves_only(device, "1")
    assert not device.layout.download_path(job_id, 1).exists()
    assert not device.layout.package_dir(MODEL, "2").exists()


@pytest.mark.parametrize("retries", [0, 1], ids=["no-retry", "one-retry"])
def test_a_step_timeout_ends_the_execution_and_the_device_winds_it_up(kit: FleetKit, retries: int) -> None:
    settings = LightSettings(step_timeout_minutes=1)
    fleet = kit.fleet(1, settings=settings, faults=lambda _index: RuntimeFaults(slow_first_loads={"2": 150.0}))
    kit.install(fleet, "1")
    (device,) = fleet.devices
    retry = {"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": retries}]}
    job_id = kit.deploy(fleet, kit.document("2"), timeout={"inProgressTimeoutInMinutes": 30}, retry=retry)
    kit.run_job(fleet, job_id)

    plane = kit.cloud.plane
    statuses = [
        plane.describe_job_execution(job_id, device.thing, number)["execution"]["status"]
        for number in range(1, retries + 2)
    ]
    assert statuses == ["TIMED_OUT", "SUCCEEDED"][: retries + 1]
    assert fleet.counts(job_id) == {statuses[-1]: 1}
    first = device.journal.find_finished(job_id, 1)
    assert first is not None and first.outcome is Outcome.FAILED and not first.report
    assert first.reason == "the job ended in the cloud as TIMED_OUT"
    assert "rollback" in history_steps(first)
    updates = terminal_updates(kit.cloud, device, job_id)
    assert [(update["status"], update.get("executionNumber")) for update in updates] == [("SUCCEEDED", 2)][:retries]
    assert_serves_only(device, "2" if retries else "1")


def test_a_partition_during_a_slow_download_resumes_with_one_ranged_get(kit: FleetKit) -> None:
    document = kit.document("1")
    fleet = kit.fleet(2, settings=slow_download(document["size"], DOWNLOAD_SECONDS))
    cut, spared = fleet.devices
    job_id = kit.deploy(fleet, document)
    fleet.partition([cut], start_in=DOWNLOAD_SECONDS / 3, duration=DOWNLOAD_SECONDS / 2)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 2}
    assert (cut.link.cuts, cut.link.resumes) == (1, 1)
    assert (spared.link.cuts, spared.link.resumes) == (0, 0)
    (state,) = finished(cut, job_id)
    download = next(record for record in state.history if record.step == "download")
    assert download.detail.endswith("after 2 attempts")
    verify = next(record for record in state.history if record.step == "verify")
    assert verify.detail == "sha256 matches"
    assert_serves_only(cut, "1")


def test_a_partition_planned_after_the_download_began_still_breaks_it(kit: FleetKit) -> None:
    document = kit.document("1")
    fleet = kit.fleet(1, settings=slow_download(document["size"], DOWNLOAD_SECONDS))
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, document)

    def partition_later(_state: JobState) -> None:
        kit.clock.call_later(1.0, lambda: fleet.partition([device], start_in=20.0, duration=30.0))

    when_step(fleet, device, job_id, Step.DOWNLOAD, partition_later)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 1}
    assert (device.link.cuts, device.link.resumes) == (1, 1)


def test_a_broker_restart_mid_job_is_retried_and_the_job_succeeds(kit: FleetKit) -> None:
    fleet = kit.fleet(3)
    kit.install(fleet, "1")
    first = fleet.devices[0]
    job_id = kit.deploy(fleet, kit.document("2"))
    broker = kit.cloud.broker
    assert broker is not None
    retries_before = {device.thing: device.driver.retries for device in fleet.devices if device.driver}

    def restart_soon(_state: JobState) -> None:
        kit.clock.call_later(0.5, lambda: broker.restart(downtime=30))

    when_step(fleet, first, job_id, Step.LOAD, restart_soon)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 3}
    for device in fleet.devices:
        assert device.driver is not None and device.driver.retries > retries_before[device.thing]
        assert [update["status"] for update in terminal_updates(kit.cloud, device, job_id)] == ["SUCCEEDED"]
        assert_serves_only(device, "2")
    assert fleet.errors() == 0


def test_lost_replies_time_out_and_are_retried_until_the_job_succeeds(kit: FleetKit) -> None:
    fleet = kit.fleet(3)
    broker = kit.cloud.broker
    assert broker is not None
    rules = [
        broker.faults.add(topic_filter=f"$aws/things/{device.thing}/jobs/+/update/accepted", drop_rate=0.5)
        for device in fleet.devices
    ]
    try:
        job_id = kit.deploy(fleet, kit.document("1"))
        kit.run_job(fleet, job_id, max_seconds=3600)
    finally:
        for rule in rules:
            broker.faults.remove(rule)
    assert fleet.counts(job_id) == {"SUCCEEDED": 3}
    assert sum(device.driver.retries for device in fleet.devices if device.driver) > 0
    for device in fleet.devices:
        assert_serves_only(device, "1")
