"""boto3 and the jobs data plane agree, on the fake profile and on the local one (moto server + Mosquitto).

Jobs are created, canceled and watched through boto3 (moto); devices talk MQTT to the data plane;
`MotoJobsBridge` keeps the two in step. Each test body runs on `SimulatedCloud("fake")` and on
`SimulatedCloud("local")` against a Mosquitto of the test's own.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulators.certificates import TlsMaterial
from simulators.cloud import SimulatedCloud
from system.adapters.iot_jobs_control import IotJobsControl
from system.ports import JobSpec, Message
from tests.mqtt_fixtures import THING_ACL, Collector, StartMosquitto

DOCUMENT = {
    "type": "new_model",
    "model_name": "img-classification",
    "model_version": "2",
    "model_package_bucket": "sm-edge-workshop-demo-123456789012",
    "model_package_key": "models/img-classification-2.tar.gz",
}
NOTIFY_WITHIN = 1.0  # seconds of wall clock, from CreateJob's call to the device's notify-next


class Stamped(Collector):
    """A Collector that also keeps each message's arrival time (time.monotonic())."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    def __call__(self, message: Message) -> None:
        self.arrivals.append(time.monotonic())
        super().__call__(message)


class Device:
    """A device on the cloud's broker, subscribed to its jobs topics, running jobs by hand."""

    def __init__(self, cloud: SimulatedCloud, thing: str) -> None:
        self.thing = thing
        self.topic = f"$aws/things/{thing}/jobs"
        self.notify_next, self.notify = Stamped(), Collector()
        self.started, self.updated = Collector(), Collector()
        self.bus = cloud.device_bus(thing)
        self.bus.subscribe(f"{self.topic}/notify-next", self.notify_next)
        self.bus.subscribe(f"{self.topic}/notify", self.notify)
        self.bus.subscribe(f"{self.topic}/start-next/accepted", self.started)
        self.bus.subscribe(f"{self.topic}/+/update/accepted", self.updated)
        self.bus.connect(timeout=5.0)

    def start_next(self) -> dict[str, Any]:
        count = len(self.started.messages)
        self.bus.publish(f"{self.topic}/start-next", json.dumps({"clientToken": self.thing}).encode(), qos=1)
        execution: dict[str, Any] = json.loads(self.started.wait_for(count + 1)[count].payload)["execution"]
        return execution

    def update(self, job_id: str, status: str, expected_version: int) -> None:
        count = len(self.updated.messages)
        request = {"status": status, "expectedVersion": expected_version, "statusDetails": {"by": self.thing}}
        self.bus.publish(f"{self.topic}/{job_id}/update", json.dumps(request).encode(), qos=1)
        self.updated.wait_for(count + 1)

    def last_notify(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.notify.messages[-1].payload)
        return payload


@pytest.fixture(params=("fake", "local", "fake+mosquitto"))
def cloud(request: pytest.FixtureRequest, unique_name: Callable[[str], str]) -> Iterator[SimulatedCloud]:
    """A started SimulatedCloud with a project of its own; a real broker is a Mosquitto of the test's own.

    "fake+mosquitto" is the fake profile with EDGESIM_MQTT_BACKEND=local: moto in-process, real broker.
    """
    profile, _, broker = request.param.partition("+")
    options: dict[str, Any] = {"project": unique_name("p")}
    if profile == "local" or broker:
        options["mqtt_url"] = request.getfixturevalue("start_mosquitto")().url
        options["mqtt"] = "local"
    with SimulatedCloud(profile, **options) as started:
        yield started


@pytest.fixture
def group_devices(cloud: SimulatedCloud, unique_name: Callable[[str], str]) -> Callable[[int], list[Device]]:
    """Factory: the seeded thing plus `n - 1` new things in the project's group, each a connected Device."""
    iot = cloud.client("iot")

    def factory(n: int) -> list[Device]:
        things = [cloud.project.thing_name]
        for _ in range(n - 1):
            thing = unique_name("line-dev")
            iot.create_thing(thingName=thing)
            iot.add_thing_to_thing_group(thingGroupName=cloud.project.thing_group_name, thingName=thing)
            things.append(thing)
        return [Device(cloud, thing) for thing in things]

    return factory


def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for a state that moto shows a moment after the device heard about it."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the state did not appear in moto in time"
        time.sleep(0.01)


def _job_id() -> str:
    return f"ota-{uuid.uuid4().hex[:10]}"


def _things(jobs: IotJobsControl, job_id: str) -> dict[str, str]:
    return {
        e["thingArn"].rsplit("/", 1)[1]: e["jobExecutionSummary"]["status"]
        for e in jobs.list_job_executions_for_job(job_id)
    }


def test_a_group_job_reaches_every_member_at_once_and_boto3_sees_each_succeed(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]]
) -> None:
    devices = group_devices(3)
    jobs, job_id = cloud.jobs_control(), _job_id()
    started = time.monotonic()
    jobs.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_group_arn], document=DOCUMENT))
    for device in devices:
        notified = json.loads(device.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)[0].payload)
        assert device.notify_next.arrivals[0] - started < NOTIFY_WITHIN
        assert notified["execution"]["jobId"] == job_id and notified["execution"]["jobDocument"] == DOCUMENT
    things = {d.thing for d in devices}
    assert _things(jobs, job_id) == dict.fromkeys(things, "QUEUED")  # no execution named after the group

    for device in devices:
        execution = device.start_next()
        assert execution["status"] == "IN_PROGRESS"
        device.update(job_id, "SUCCEEDED", execution["versionNumber"])
    eventually(lambda: _things(jobs, job_id) == dict.fromkeys(things, "SUCCEEDED"))
    for device in devices:
        execution = jobs.describe_job_execution(job_id, device.thing)
        assert execution["status"] == "SUCCEEDED"
        assert execution["statusDetails"]["detailsMap"] == {"by": device.thing}
        assert (execution["executionNumber"], execution["versionNumber"]) == (1, 3)
        assert execution["startedAt"] <= execution["lastUpdatedAt"]
    eventually(lambda: jobs.describe_job(job_id)["status"] == "COMPLETED")
    assert jobs.describe_job(job_id)["jobProcessDetails"]["numberOfSucceededThings"] == 3
    by_thing = cloud.client("iot").list_job_executions_for_thing(thingName=devices[0].thing)["executionSummaries"]
    assert [(e["jobId"], e["jobExecutionSummary"]["status"]) for e in by_thing] == [(job_id, "SUCCEEDED")]


def test_a_continuous_job_reaches_a_thing_added_to_the_group_afterwards(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]], unique_name: Callable[[str], str]
) -> None:
    (first,) = group_devices(1)
    jobs, job_id, iot = cloud.jobs_control(), _job_id(), cloud.client("iot")
    jobs.create_job(
        JobSpec(
            job_id=job_id, targets=[cloud.project.thing_group_arn], document=DOCUMENT, target_selection="CONTINUOUS"
        )
    )
    first.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
    newcomer = unique_name("late-dev")
    iot.create_thing(thingName=newcomer)
    device = Device(cloud, newcomer)
    added = time.monotonic()
    iot.add_thing_to_thing_group(thingGroupName=cloud.project.thing_group_name, thingName=newcomer)
    notified = json.loads(device.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)[0].payload)
    assert device.notify_next.arrivals[0] - added < NOTIFY_WITHIN
    assert notified["execution"]["jobId"] == job_id
    assert jobs.describe_job_execution(job_id, newcomer)["status"] == "QUEUED"
    assert _things(jobs, job_id) == {first.thing: "QUEUED", newcomer: "QUEUED"}
    assert jobs.describe_job(job_id)["status"] == "IN_PROGRESS"  # a continuous job never completes


def test_cancel_job_through_boto3_cancels_queued_executions_and_with_force_in_progress_ones(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]]
) -> None:
    busy, idle = group_devices(2)
    jobs, job_id = cloud.jobs_control(), _job_id()
    jobs.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_group_arn], document=DOCUMENT))
    for device in (busy, idle):
        device.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
        device.notify.wait_for(1)
    assert job_id in json.dumps(idle.last_notify()["jobs"]["QUEUED"])
    busy.start_next()

    jobs.cancel_job(job_id, comment="bad model")
    idle.notify.wait_for(2)
    assert idle.last_notify()["jobs"] == {}  # the queued execution disappeared from the device's list
    assert "execution" not in json.loads(idle.notify_next.wait_for(2)[1].payload)
    eventually(lambda: _things(jobs, job_id) == {busy.thing: "IN_PROGRESS", idle.thing: "CANCELED"})
    job = jobs.describe_job(job_id)
    assert (job["status"], job["comment"], job["forceCanceled"]) == ("CANCELED", "bad model", False)
    assert job["jobProcessDetails"]["numberOfCanceledThings"] == 1
    assert job["jobProcessDetails"]["numberOfInProgressThings"] == 1

    assert len(busy.notify.messages) == 1  # starting it changed nothing in its list; neither did the cancel
    jobs.cancel_job(job_id, force=True)  # a forced cancel of the canceled job reaches IN_PROGRESS too
    busy.notify.wait_for(2)
    assert busy.last_notify()["jobs"] == {}
    eventually(lambda: _things(jobs, job_id) == {busy.thing: "CANCELED", idle.thing: "CANCELED"})
    assert jobs.describe_job(job_id)["forceCanceled"] is True
    assert jobs.describe_job_execution(job_id, busy.thing)["forceCanceled"] is True


def test_cancel_job_execution_of_a_group_member_through_boto3(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]]
) -> None:
    kept, dropped = group_devices(2)
    jobs, job_id = cloud.jobs_control(), _job_id()
    jobs.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_group_arn], document=DOCUMENT))
    dropped.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
    jobs.cancel_job_execution(job_id, dropped.thing)  # moto alone: KeyError, it has no member executions
    assert "execution" not in json.loads(dropped.notify_next.wait_for(2)[1].payload)
    eventually(lambda: _things(jobs, job_id) == {kept.thing: "QUEUED", dropped.thing: "CANCELED"})
    assert jobs.describe_job_execution(job_id, dropped.thing)["versionNumber"] == 2


def test_a_job_created_by_any_boto3_client_reaches_the_device_by_polling(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]]
) -> None:
    (device,) = group_devices(1)
    outsider = cloud.moto.client("iot")  # not watched by the bridge: like the AWS CLI or another process
    job_id = _job_id()
    started = time.monotonic()
    outsider.create_job(jobId=job_id, targets=[cloud.project.thing_arn], document=json.dumps(DOCUMENT))
    device.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
    assert device.notify_next.arrivals[0] - started < NOTIFY_WITHIN
    execution = outsider.describe_job_execution(jobId=job_id, thingName=device.thing)["execution"]
    assert (execution["status"], execution["executionNumber"], execution["versionNumber"]) == ("QUEUED", 1, 1)


def test_a_failed_attempt_is_retried_and_boto3_shows_the_newest_attempt(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]]
) -> None:
    (device,) = group_devices(1)
    jobs, job_id = cloud.jobs_control(), _job_id()
    retry = {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]}
    jobs.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_arn], document=DOCUMENT, retry=retry))
    device.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
    execution = device.start_next()
    device.update(job_id, "FAILED", execution["versionNumber"])
    eventually(lambda: jobs.describe_job_execution(job_id, device.thing)["executionNumber"] == 2)
    newest = jobs.describe_job_execution(job_id, device.thing)
    assert (newest["status"], newest["versionNumber"]) == ("QUEUED", 1)
    details = jobs.describe_job(job_id)["jobProcessDetails"]
    assert (details["numberOfFailedThings"], details["numberOfQueuedThings"]) == (1, 1)


def test_a_job_the_data_plane_refuses_is_canceled_in_moto_with_the_reason(cloud: SimulatedCloud) -> None:
    jobs, job_id = cloud.jobs_control(), _job_id()
    jobs.create_job(JobSpec(job_id=job_id, targets=["arn:aws:iot:us-east-1:123456789012:bogus/x"], document=DOCUMENT))
    job = jobs.describe_job(job_id)  # AWS would have answered InvalidRequestException
    assert job["status"] == "CANCELED" and job["reasonCode"] == "EDGESIM_REFUSED"
    assert "InvalidRequestException" in job["comment"]
    assert jobs.list_job_executions_for_job(job_id) == []
    assert any(job_id in error for error in cloud.bridge.errors)


def test_a_job_created_in_the_data_plane_directly_shows_in_boto3(cloud: SimulatedCloud) -> None:
    jobs, job_id = cloud.jobs_control(), _job_id()
    cloud.plane.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_group_arn], document=DOCUMENT))
    eventually(lambda: _things(jobs, job_id) == {cloud.project.thing_name: "QUEUED"})
    assert jobs.describe_job(job_id)["status"] == "IN_PROGRESS"
    assert json.loads(cloud.client("iot").get_job_document(jobId=job_id)["document"]) == DOCUMENT


def test_boto3_changes_the_data_plane_refuses_are_undone(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]]
) -> None:
    (device,) = group_devices(1)
    jobs, iot, job_id = cloud.jobs_control(), cloud.client("iot"), _job_id()
    jobs.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_arn], document=DOCUMENT))
    device.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
    iot.create_job(jobId=job_id, targets=[cloud.project.thing_arn], document='{"other": 1}')  # AWS: already exists
    assert json.loads(iot.get_job_document(jobId=job_id)["document"]) == DOCUMENT
    execution = device.start_next()
    device.update(job_id, "SUCCEEDED", execution["versionNumber"])
    eventually(lambda: jobs.describe_job(job_id)["status"] == "COMPLETED")
    jobs.cancel_job(job_id)  # AWS: InvalidStateTransition for a COMPLETED job; moto accepts it
    jobs.cancel_job_execution(job_id, device.thing)  # likewise for a SUCCEEDED execution
    assert jobs.describe_job(job_id)["status"] == "COMPLETED"
    assert jobs.describe_job_execution(job_id, device.thing)["status"] == "SUCCEEDED"
    assert len([e for e in cloud.bridge.errors if job_id in e]) == 3


def test_deletes_through_boto3_reach_the_data_plane(
    cloud: SimulatedCloud, group_devices: Callable[[int], list[Device]]
) -> None:
    first, second = group_devices(2)
    jobs, iot, job_id = cloud.jobs_control(), cloud.client("iot"), _job_id()
    jobs.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_group_arn], document=DOCUMENT))
    second.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
    iot.delete_job_execution(jobId=job_id, thingName=second.thing, executionNumber=1)
    assert "execution" not in json.loads(second.notify_next.wait_for(2)[1].payload)
    assert [e["thingArn"] for e in cloud.plane.list_job_executions_for_job(job_id)] == [_arn(cloud, first)]
    iot.delete_job(jobId=job_id, force=True)
    assert "execution" not in json.loads(first.notify_next.wait_for(2)[1].payload)
    assert iot.list_job_executions_for_thing(thingName=first.thing)["executionSummaries"] == []


def _arn(cloud: SimulatedCloud, device: Device) -> str:
    return f"arn:aws:iot:{cloud.region}:{cloud.project.account_id}:thing/{device.thing}"


def test_over_mutual_tls_with_an_acl_a_device_runs_a_job_and_boto3_sees_it(
    start_mosquitto: StartMosquitto, tls_material: TlsMaterial, unique_name: Callable[[str], str]
) -> None:
    mosquitto = start_mosquitto(tls=tls_material, acl=THING_ACL)  # devices: their own topics only
    with SimulatedCloud("local", mqtt_url=mosquitto.url, tls=tls_material, project=unique_name("p")) as cloud:
        device = Device(cloud, cloud.project.thing_name)  # CN = the thing, issued by the TlsMaterial
        jobs, job_id = cloud.jobs_control(), _job_id()
        jobs.create_job(JobSpec(job_id=job_id, targets=[cloud.project.thing_group_arn], document=DOCUMENT))
        device.notify_next.wait_for(1, timeout=NOTIFY_WITHIN)
        execution = device.start_next()
        device.update(job_id, "SUCCEEDED", execution["versionNumber"])
        eventually(lambda: jobs.describe_job_execution(job_id, device.thing)["status"] == "SUCCEEDED")


def test_the_bridge_stops_polling_when_the_cloud_stops(unique_name: Callable[[str], str]) -> None:
    before = {t.name for t in threading.enumerate()}
    with SimulatedCloud("fake", project=unique_name("p")) as cloud:
        assert "moto-jobs-bridge" in {t.name for t in threading.enumerate()}
        bridge = cloud.bridge
        assert bridge.running
    assert not bridge.running
    assert "moto-jobs-bridge" not in {t.name for t in threading.enumerate()} - before
