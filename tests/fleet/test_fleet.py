"""Fleet: provisioning things into the fleet's own group, what it reports, and its partitions."""

from __future__ import annotations

import io

from simulators.fleet.fleet import Fleet
from simulators.fleet.light_device import LightDevice
from simulators.fleet.progress import Progress
from tests.fleet.fleet_kit import MODEL, FleetKit


def connected(device: LightDevice) -> bool:
    return device.bus is not None and device.bus.connected


def test_provision_puts_the_things_in_the_fleets_own_group(kit: FleetKit) -> None:
    fleet = kit.fleet(3)
    iot = kit.cloud.moto.client("iot")
    members = iot.list_things_in_thing_group(thingGroupName=fleet.group)["things"]
    assert sorted(members) == sorted(device.thing for device in fleet.devices)
    assert fleet.group_arn.endswith(f":thinggroup/{fleet.prefix}-fleet")
    assert [device.thing for device in fleet.devices] == [f"{fleet.prefix}-{n:05d}" for n in range(3)]
    assert fleet.device(fleet.devices[1].thing) is fleet.devices[1]
    for device in fleet.devices:
        assert device.alive and device.layout.root == fleet.root / device.thing
    fleet.run_for(1)
    assert all(connected(device) for device in fleet.devices)
    assert fleet.idle()


def test_a_second_provision_adds_devices_that_a_new_job_reaches(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    added = fleet.provision(2)
    assert len(fleet.devices) == 3 and fleet.devices[1:] == added
    job_id = kit.deploy(fleet, kit.document("1"))
    assert not fleet.finished(job_id)
    kit.run_job(fleet, job_id)
    assert fleet.finished(job_id) and fleet.job_status(job_id) == "COMPLETED"
    assert fleet.counts(job_id) == {"SUCCEEDED": 3}
    assert fleet.served() == {f"{MODEL} 1": 3}
    assert fleet.summary() == f"3 devices, 0 working on a job; serving {MODEL} 1: 3"
    assert fleet.errors() == 0


def test_counts_are_per_fleet_even_on_a_shared_job(kit: FleetKit) -> None:
    first, second = kit.fleet(1), kit.fleet(2)
    job_id = kit.deploy(first, kit.document("1"))
    kit.run_job(first, job_id)
    assert first.counts(job_id) == {"SUCCEEDED": 1}
    assert second.counts(job_id) == {}
    assert second.served() == {}


def test_a_partition_cuts_mqtt_and_s3_for_its_window_only(kit: FleetKit) -> None:
    fleet = kit.fleet(2)
    cut, spared = fleet.devices
    fleet.run_for(1)
    start = kit.clock.now()
    fleet.partition([cut], start_in=10.0, duration=30.0)
    assert cut.link.outages == [(start + 10.0, start + 40.0)] and spared.link.outages == []
    fleet.run_for(5)
    assert connected(cut)
    fleet.run_for(10)
    assert not connected(cut) and connected(spared)
    assert not fleet.run_until(lambda: connected(cut), 24.0)  # refused until the window closes
    assert fleet.run_until(lambda: connected(cut), 60.0)  # then its reconnect backoff brings it back
    assert cut.link.up_at(kit.clock.now()) == kit.clock.now()


def restart_within(fleet: Fleet, device: LightDevice, seconds: float) -> None:
    """Kill the device, start it `seconds` later, and let it run `seconds` more."""
    device.kill()
    fleet.run_for(seconds)
    device.start()
    fleet.run_for(seconds)


def test_a_device_restarted_during_a_partition_stays_cut_off(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    (device,) = fleet.devices
    fleet.run_for(1)
    fleet.partition([device], start_in=0.0, duration=120.0)
    fleet.run_for(1)
    assert not connected(device)
    restart_within(fleet, device, 5.0)
    assert not connected(device)
    assert fleet.run_until(lambda: connected(device), 150.0)  # the device's own retries, once the window closed
    assert kit.clock.now() >= device.link.outages[0][1]


def test_a_partition_planned_before_a_restart_cuts_the_restarted_device(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    (device,) = fleet.devices
    fleet.run_for(1)
    fleet.partition([device], start_in=30.0, duration=120.0)
    restart_within(fleet, device, 5.0)
    fleet.run_for(30)  # inside the window now
    assert not connected(device)


def test_run_until_shows_progress_and_a_final_line(kit: FleetKit) -> None:
    stream = io.StringIO()
    fleet = kit.fleet(1)
    fleet.progress = Progress(lambda: 42.0, stream, interval=3600.0)
    job_id = kit.deploy(fleet, kit.document("1"))
    assert fleet.run_until(lambda: fleet.finished(job_id), 600)
    lines = stream.getvalue().splitlines()
    assert lines[-1] == f"  [  42.00 s] 1 devices, 0 working on a job; serving {MODEL} 1: 1"
    assert len(lines) <= 2  # one when due (at most once an hour here), one forced at the end


def test_progress_describes_only_when_a_line_is_due() -> None:
    stream = io.StringIO()
    progress = Progress(lambda: 1.5, stream, interval=3600.0)
    calls: list[int] = []

    def describe() -> str:
        calls.append(1)
        return "busy"

    progress.maybe_show(describe, force=True)
    progress.maybe_show(describe)  # not due for an hour
    assert (len(calls), progress.shown) == (1, 1)
    assert stream.getvalue() == "  [   1.50 s] busy\n"
