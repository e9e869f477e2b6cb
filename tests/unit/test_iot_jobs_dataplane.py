"""JobsDataPlane facade: delivery order, re-entrant devices, threads, Clock timers; the bare model."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import pytest

from simulators.iot_jobs import JobsDataPlane, JobsModel
from system.ports import JobSpec
from tests.unit.iot_jobs_support import Rig, make_clock, thing_arn, topic


class EagerDevice:
    """A device that works on whatever notify-next offers, from inside the delivery callback."""

    def __init__(self, outcome: str = "SUCCEEDED") -> None:
        self.outcome = outcome
        self.plane: JobsDataPlane | None = None
        self.log: list[tuple[str, dict[str, Any]]] = []

    def publish(self, t: str, payload: bytes) -> None:
        body = json.loads(payload)
        self.log.append((t, body))
        assert self.plane is not None
        thing = t.split("/")[2]
        if t.endswith("/notify-next") and body.get("execution", {}).get("status") == "QUEUED":
            self.plane.handle(thing, topic(thing, "start-next"), b"{}")
        elif t.endswith("/start-next/accepted") and "execution" in body:
            job_id = body["execution"]["jobId"]
            self.plane.handle(thing, topic(thing, f"{job_id}/update"), json.dumps({"status": self.outcome}).encode())


def test_a_device_may_call_back_from_inside_a_delivery_and_order_is_kept() -> None:
    device = EagerDevice()
    plane = JobsDataPlane(make_clock(), publish=device.publish)  # replies published too (plain broker)
    device.plane = plane
    plane.create_job(JobSpec(job_id="j1", targets=[thing_arn("t1")], document={"v": 1}))
    assert [t.split("/jobs/")[1] for t, _ in device.log] == [
        "notify",
        "notify-next",
        "start-next/accepted",
        "j1/update/accepted",
        "notify-next",
        "notify",
    ]
    assert plane.describe_job("j1")["job"]["status"] == "COMPLETED"


def test_concurrent_devices_keep_state_consistent() -> None:
    things = [f"t{i}" for i in range(8)]
    inboxes: dict[str, queue.Queue[dict[str, Any]]] = {t: queue.Queue() for t in things}
    plane = JobsDataPlane(
        make_clock(),
        publish=lambda t, p: None,
        reply=lambda who, t, p: inboxes[who].put(json.loads(p)),  # another thread may deliver it
    )
    for n in range(5):
        plane.create_job(JobSpec(job_id=f"j{n}", targets=[thing_arn(t) for t in things], document={}))
    failures: list[Exception] = []

    def request(thing: str, suffix: str, body: dict[str, Any]) -> dict[str, Any]:
        plane.handle(thing, topic(thing, suffix), json.dumps(body).encode())
        return inboxes[thing].get(timeout=10)

    def work(thing: str) -> None:
        try:
            for _ in range(5):
                execution = request(thing, "start-next", {})["execution"]
                body = {"status": "SUCCEEDED", "expectedVersion": execution["versionNumber"]}
                assert "code" not in request(thing, f"{execution['jobId']}/update", body)
        except Exception as error:  # noqa: BLE001 - surfaced by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in things]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for n in range(5):
        job = plane.describe_job(f"j{n}")["job"]
        assert job["status"] == "COMPLETED" and job["jobProcessDetails"]["numberOfSucceededThings"] == 8


def test_rollout_runs_on_clock_timers_until_idle_and_close_stops_them() -> None:
    rig = Rig()
    rig.job("slow", [f"t{i}" for i in range(6)], rollout={"maximumPerMinute": 2})
    rig.clock.run_until_idle(3600)
    assert rig.plane.describe_job("slow")["job"]["jobProcessDetails"]["numberOfQueuedThings"] == 6
    rig.send("t0", "start-next", {"stepTimeoutInMinutes": 1})
    rig.plane.close()
    rig.clock.advance(120)
    assert rig.send("t0", "slow/get", {})[1]["execution"]["status"] == "IN_PROGRESS"


def test_reset_forgets_everything() -> None:
    rig = Rig()
    rig.job("j1", ["t1"], rollout={"maximumPerMinute": 1})
    rig.plane.reset()
    assert rig.send("t1", "get", {})[1]["queuedJobs"] == []
    rig.job("j1", ["t1"])


def test_a_failing_callback_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def publish(t: str, payload: bytes) -> None:
        seen.append(t)
        if t.endswith("/notify"):
            raise ConnectionError("broker gone")

    plane = JobsDataPlane(make_clock(), publish=publish)
    plane.create_job(JobSpec(job_id="j1", targets=[thing_arn("t1")], document={}))
    assert seen == ["$aws/things/t1/jobs/notify", "$aws/things/t1/jobs/notify-next"]
    assert "delivery failed" in caplog.text


def test_the_plain_model_returns_replies_and_notifications_without_any_transport() -> None:
    clock = make_clock()
    model = JobsModel(clock)
    created = model.create_job(JobSpec(job_id="j1", targets=[thing_arn("t1")], document={"a": 1}))
    assert created.reply["jobId"] == "j1"
    assert [(n.thing_name, n.kind) for n in created.notifications] == [("t1", "notify"), ("t1", "notify-next")]
    started = model.start_next("t1", step_timeout=1)
    assert started.reply["execution"]["status"] == "IN_PROGRESS" and started.notifications == []
    assert model.next_wakeup() == model.now() + 60
    clock.advance(60)  # the model keeps no timers: nothing happens until advance()
    assert model.describe("t1", "j1").reply["execution"]["status"] == "IN_PROGRESS"
    expired = model.advance()
    assert [n.kind for n in expired.notifications] == ["notify-next", "notify"]
    assert [c.execution.status for c in expired.changes if c.execution] == ["TIMED_OUT"]


def test_the_observer_hears_of_each_change_before_the_messages_it_caused_go_out() -> None:
    """So a control plane mirrored by the observer (moto, through the bridge) already agrees with
    what a device has just been told."""
    events: list[str] = []
    device = EagerDevice()

    def publish(t: str, payload: bytes) -> None:
        events.append("message:" + t.split("/jobs/")[1])
        device.publish(t, payload)

    def observe(change: Any) -> None:
        status = change.execution.status if change.execution is not None else change.job_status
        events.append(f"change:{status}")

    plane = JobsDataPlane(make_clock(), publish=publish, observer=observe)
    device.plane = plane
    plane.create_job(JobSpec(job_id="j1", targets=[thing_arn("t1")], document={"v": 1}))
    first_queued = events.index("change:QUEUED")
    assert first_queued < events.index("message:notify-next")
    assert events.index("change:IN_PROGRESS") < events.index("message:start-next/accepted")
    assert events.index("change:SUCCEEDED") < events.index("message:j1/update/accepted")
