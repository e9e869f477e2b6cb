"""A device killed at any OTA step restarts with a working model, a config matching the agent, and
the job finished or resumed.

The kill is injected in-process: the OTA worker dies at the chosen step (an exception no handler
catches, as a SIGKILL would stop it) and the rest of the device is dropped without any shutdown
work that touches its files. The restarted device gets a fresh agent (it died with the device), or
the old one when `agent_survives` (an agent running as its own process outlives the app).
"""

from __future__ import annotations

from typing import Any

import pytest

from simulators.harness.faults import DeviceKilled, crash, kill_at
from system.edge.ota_machine import Step
from tests.edge.test_ota_flows import assert_consistent, deploy_and_wait, eventually
from tests.edge_world import EdgeWorld

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.parametrize("world", ["fake", "local"], indirect=True),
]


@pytest.mark.parametrize("agent_survives", [False, True], ids=["agent-died", "agent-survived"])
@pytest.mark.parametrize(
    "step",
    [Step.DOWNLOAD, Step.VERIFY, Step.EXTRACT, Step.LOAD, Step.HEALTH_CHECK, Step.SWITCH, Step.UNLOAD_OLD],
    ids=lambda s: f"killed-at-{s}",
)
def test_kill_at_any_step_then_restart_finishes_the_job(world: EdgeWorld, step: Step, agent_survives: bool) -> None:
    agent = world.agent()
    device = world.start_device(agent=agent)
    assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
    kill_at(device, step)
    job_id = world.deploy(world.document("img-classification", "2"))
    crash(device)
    journal = device.journal.current
    assert journal is not None and journal.job_id == job_id and journal.step is step
    if step is Step.DOWNLOAD:
        assert device.layout.download_path(job_id, 1).stat().st_size > 0  # the partial file survived

    restarted = world.start_device(agent=agent if agent_survives else None)
    if step in (Step.UNLOAD_OLD,):
        assert {m.version for m in restarted.roster.all()} == {"2"}  # the switch had been persisted
    else:
        assert {m.version for m in restarted.roster.all()} == {"1"}  # the old model serves at once
    execution = world.wait_job(job_id)
    assert execution["status"] == "SUCCEEDED", execution
    assert_consistent(world, restarted, {"img-classification": "2"})
    history = restarted.jobs()[0]["steps"]
    assert any(record["step"] == "restart" for record in history)
    eventually(lambda: restarted.engine.count > 3, what="inference after the restart")
    assert restarted.engine.errors == 0


def test_kill_before_the_report_resends_it_after_restart(world: EdgeWorld) -> None:
    device = world.start_device()
    real_update = device.jobs_client.update

    def update(job_id: str, status: str, **kwargs: Any) -> dict[str, Any]:
        if status == "SUCCEEDED":
            raise DeviceKilled("killed just before reporting")
        return real_update(job_id, status, **kwargs)

    device.jobs_client.update = update  # type: ignore[method-assign]
    job_id = world.deploy(world.document("img-classification", "1"))
    crash(device)
    assert world.jobs.describe_job_execution(job_id, world.thing)["status"] == "IN_PROGRESS"
    restarted = world.start_device()
    assert world.wait_job(job_id)["status"] == "SUCCEEDED"
    assert_consistent(world, restarted, {"img-classification": "1"})


def test_job_canceled_in_the_cloud_while_the_device_was_down_is_rolled_back(world: EdgeWorld) -> None:
    agent = world.agent()
    device = world.start_device(agent=agent)
    assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
    kill_at(device, Step.HEALTH_CHECK)
    job_id = world.deploy(world.document("img-classification", "2"))
    crash(device)
    world.jobs.cancel_job(job_id, force=True)
    restarted = world.start_device(agent=agent)
    eventually(lambda: restarted.journal.current is None, what="the canceled job to be wound up")
    assert world.jobs.describe_job_execution(job_id, world.thing)["status"] == "CANCELED"
    assert_consistent(world, restarted, {"img-classification": "1"})
    assert not restarted.layout.package_dir("img-classification", "2").exists()
    assert restarted.jobs()[0]["status"] == "FAILED" and "CANCELED" in restarted.jobs()[0]["reason"]
