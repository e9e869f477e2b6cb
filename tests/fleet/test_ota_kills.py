"""Light devices killed mid-job: the restarted device finishes or winds up the job from its folder.

`LightDevice.kill()` is the process dying (no clean disconnect, the runtime forgets its models,
nothing scheduled runs); `start()` boots again from models_config.json and the OTA journal. The
kill is timed by the journal (`when_step`), so it lands right after that step was recorded.
"""

from __future__ import annotations

import pytest

from simulators.broker.faults import FaultRule
from simulators.fleet.runtime import RuntimeFaults
from system.edge.ota_machine import JobState, Outcome, Step
from tests.fleet.fleet_kit import (
    MODEL,
    FleetKit,
    assert_serves_only,
    configured,
    finished,
    history_steps,
    kill_and_restart,
    loaded_versions,
    slow_download,
    terminal_updates,
    when_step,
)

DOWN_FOR = 30.0  # clock seconds between the kill and the restart
STEPS = [
    Step.DOWNLOAD,
    Step.VERIFY,
    Step.EXTRACT,
    Step.LOAD,
    Step.HEALTH_CHECK,
    Step.SWITCH,
    Step.UNLOAD_OLD,
    Step.REPORT,
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"killed-at-{s}")
def test_a_device_killed_at_any_step_finishes_the_job_after_a_restart(kit: FleetKit, step: Step) -> None:
    fleet = kit.fleet(2)
    kit.install(fleet, "1")
    device, bystander = fleet.devices
    job_id = kit.deploy(fleet, kit.document("2"))
    restarts: list[list[float]] = []
    at_boot: list[tuple[dict[str, str], dict[str, str], list[str]]] = []

    def look() -> None:  # right after start-up, before the journaled job goes on
        at_boot.append((device.served(), configured(device), loaded_versions(device)))

    def kill(_state: JobState) -> None:
        restarts.append(kill_and_restart(kit.clock, device, DOWN_FOR, then=look))

    killed = when_step(fleet, device, job_id, step, kill)
    kit.run_job(fleet, job_id)
    assert killed and restarts and restarts[0], f"the job never reached {step}"
    switched = "2" if step in (Step.UNLOAD_OLD, Step.REPORT) else "1"  # models_config.json changes at SWITCH
    assert at_boot == [({MODEL: switched}, {MODEL: switched}, [switched])]
    assert fleet.counts(job_id) == {"SUCCEEDED": 2}
    (state,) = finished(device, job_id)
    assert state.outcome is Outcome.SUCCEEDED and state.interruptions == 1
    assert "restart" in history_steps(state)
    restart_record = next(record for record in state.history if record.step == "restart")
    assert restart_record.at == restarts[0][0]
    assert [update["status"] for update in terminal_updates(kit.cloud, device, job_id)] == ["SUCCEEDED"]
    assert_serves_only(device, "2")
    assert_serves_only(bystander, "2")
    assert not device.layout.package_dir(MODEL, "1").exists()
    assert device.journal.current is None


def test_the_old_version_serves_at_once_after_a_kill_before_the_switch(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    kit.install(fleet, "1")
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, kit.document("2"))
    when_step(fleet, device, job_id, Step.SWITCH, lambda _state: device.kill())
    fleet.run_until(lambda: not device.alive, 60)
    device.start()
    assert device.startup.loaded == [f"{MODEL}-1"]
    assert device.served() == {MODEL: "1"}
    current = device.journal.current
    assert current is not None and current.step is Step.SWITCH  # resumed at LOAD once the driver runs
    kit.run_job(fleet, job_id)
    assert_serves_only(device, "2")


def test_a_device_killed_during_a_rollback_finishes_it_after_a_restart(kit: FleetKit) -> None:
    fleet = kit.fleet(1, faults=lambda _index: RuntimeFaults(fail_loads={"2"}))
    kit.install(fleet, "1")
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, kit.document("2"))

    def kill(_state: JobState) -> None:
        kill_and_restart(kit.clock, device, DOWN_FOR)

    when_step(fleet, device, job_id, Step.ROLLBACK, kill)
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"FAILED": 1}
    (state,) = finished(device, job_id)
    assert state.reason.startswith("the agent could not load the model") and state.interruptions == 1
    assert_serves_only(device, "1")
    assert not device.layout.package_dir(MODEL, "2").exists()


def test_a_partial_download_survives_a_kill_and_resumes_with_a_range(kit: FleetKit) -> None:
    document = kit.document("1")
    fleet = kit.fleet(1, settings=slow_download(document["size"], seconds=60.0))
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, document)
    fleet.partition([device], start_in=20.0, duration=20.0)  # cuts the transfer a third of the way
    fleet.run_until(lambda: device.link.cuts == 1, 60)
    partial = device.layout.download_path(job_id, 1).stat().st_size
    assert 0 < partial < document["size"]
    device.kill()
    fleet.run_for(60)  # the outage ends while the device is down
    device.start()
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 1}
    assert device.link.resumes == 1
    (state,) = finished(device, job_id)
    assert state.interruptions == 1
    assert_serves_only(device, "1")


def test_a_report_the_cloud_took_is_not_sent_again_after_a_restart(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    kit.install(fleet, "1")
    (device,) = fleet.devices
    broker = kit.cloud.broker
    assert broker is not None
    job_id = kit.deploy(fleet, kit.document("2"))
    lost: list[FaultRule] = []
    restarted: list[float] = []

    def restart() -> None:
        broker.faults.remove(lost[0])
        restarted.append(kit.clock.now())
        device.start()

    def lose_the_reply_then_die(_state: JobState) -> None:
        # The SUCCEEDED update reaches the cloud; its reply does not reach the device, which dies waiting.
        accepted = f"$aws/things/{device.thing}/jobs/{job_id}/update/accepted"
        lost.append(broker.faults.add(topic_filter=accepted, drop_rate=1.0))
        kit.clock.call_later(2.0, device.kill)
        kit.clock.call_later(DOWN_FOR, restart)

    when_step(fleet, device, job_id, Step.REPORT, lose_the_reply_then_die)
    assert fleet.run_until(lambda: bool(restarted) and device.current is None and not device.busy, 300)
    assert fleet.counts(job_id) == {"SUCCEEDED": 1}
    assert [update["status"] for update in terminal_updates(kit.cloud, device, job_id)] == ["SUCCEEDED"]
    (state,) = finished(device, job_id)
    assert state.outcome is Outcome.SUCCEEDED and state.interruptions == 1
    assert not state.report  # the restarted device found it SUCCEEDED in the cloud
    assert_serves_only(device, "2")


def test_a_job_created_while_the_device_is_down_runs_when_it_starts(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    (device,) = fleet.devices
    device.kill()
    job_id = kit.deploy(fleet, kit.document("1"))
    fleet.run_for(120)
    assert fleet.counts(job_id) == {"QUEUED": 1}
    device.start()
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 1}
    assert_serves_only(device, "1")


def test_a_job_that_keeps_killing_the_device_is_given_up_after_three_restarts(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    kit.install(fleet, "1")
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, kit.document("2"))
    kills: list[int] = []

    def kill_at_every_load(thing: str, state: JobState) -> None:
        if thing == device.thing and state.job_id == job_id and state.step is Step.LOAD:
            kills.append(state.interruptions)
            kill_and_restart(kit.clock, device, DOWN_FOR)

    fleet.listeners.append(kill_at_every_load)
    kit.run_job(fleet, job_id)
    assert kills == [0, 1, 2, 3]
    assert fleet.counts(job_id) == {"FAILED": 1}
    (state,) = finished(device, job_id)
    assert state.interruptions == 4
    assert state.reason.startswith("interrupted 4 times during load")
    assert_serves_only(device, "1")


def test_a_clean_stop_mid_job_keeps_the_runtime_and_the_start_adopts_it(kit: FleetKit) -> None:
    fleet = kit.fleet(1)
    kit.install(fleet, "1")
    (device,) = fleet.devices
    job_id = kit.deploy(fleet, kit.document("2"))
    when_step(fleet, device, job_id, Step.HEALTH_CHECK, lambda _state: device.stop())
    assert fleet.run_until(lambda: not device.alive, 60)
    assert loaded_versions(device) == ["1", "2"]  # a stop is not a crash: the runtime keeps both
    device.start()
    assert device.startup.adopted == [f"{MODEL}-1"] and device.startup.loaded == []
    kit.run_job(fleet, job_id)
    assert fleet.counts(job_id) == {"SUCCEEDED": 1}
    assert_serves_only(device, "2")
