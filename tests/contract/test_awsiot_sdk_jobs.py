"""The real AWS IoT Device SDK jobs clients run jobs against our data plane (issue 4, Tests).

A Mosquitto of the test's own with mutual TLS and an ACL (a device may use only its own
`$aws/things/<CN>/#`, the data plane's identity "cloud" everything) carries the traffic. The data
plane is attached as an ordinary client (`PahoMessageBus` + `BusJobsFrontend`, wall clock), as on
the `local` profile. The devices are awsiotsdk 1.31.0 clients over awscrt mTLS connections:

- `IotJobsClient` (MQTT 3.1.1, `mqtt_connection_builder.mtls_from_path`): subscribe, publish, and
  receive parsed replies in callbacks. A reply the SDK cannot parse reaches the callback as None, so
  every callback value is checked to be parsed (reference/iot-jobs-mqtt.md section 7, item 12).
- `IotJobsClientV2` (MQTT5, `mqtt5_client_builder.mtls_from_path`, `awscrt.mqtt_request_response`):
  its futures resolve only if the broker grants the `.../+` subscriptions and every accepted and
  rejected reply echoes the request's `clientToken` (section 0).

Times parsed as datetimes close to now prove integer epoch seconds: the SDK applies
`datetime.fromtimestamp()`, which fails on milliseconds. Replies are subscribed at QoS 0 where the
SDK lets us choose: awscrt cannot set TCP_NODELAY, so QoS 1 replies wait out Nagle plus delayed ACK
(feasibility.md section 5); the V2 client subscribes by itself, and its round trips take ~44 ms.

Most tests check the outcome in the plane's control-plane views (`describe_job_execution`,
`list_job_executions_for_job`); the last one runs through `SimulatedCloud("local")` (moto server and
`MotoJobsBridge`), creating the job and the group member with boto3 and reading the result there.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import ServiceStreamOptions, V2ServiceException, iotjobs, mqtt5_client_builder, mqtt_connection_builder

from simulators.certificates import TlsMaterial
from simulators.cloud import SimulatedCloud
from simulators.iot_jobs.dataplane import JobsDataPlane
from simulators.iot_jobs.frontends import BusJobsFrontend
from simulators.mosquitto import MosquittoProcess
from system.adapters.paho_bus import PahoMessageBus
from system.clock import WallClock
from system.ports import JobSpec
from tests.mqtt_fixtures import CLOUD, FAST_RECONNECT, THING_ACL, StartMosquitto

TIMEOUT = 5.0
ACCOUNT_ARN = "arn:aws:iot:us-east-1:123456789012"
DOCUMENT = {"type": "new_model", "model_name": "unet", "model_version": "2", "model_package_key": "k/unet-2.tar.gz"}
QOS0, QOS1 = mqtt.QoS.AT_MOST_ONCE, mqtt.QoS.AT_LEAST_ONCE


def thing_arn(thing: str) -> str:
    return f"{ACCOUNT_ARN}:thing/{thing}"


def group_arn(group: str) -> str:
    return f"{ACCOUNT_ARN}:thinggroup/{group}"


def recent(moment: datetime.datetime | None) -> bool:
    """A datetime the SDK parsed from an integer-seconds timestamp of this run."""
    return moment is not None and abs(datetime.datetime.now() - moment) < datetime.timedelta(minutes=5)


class Inbox:
    """A callback that keeps what the SDK hands it; `wait_for(n)` blocks until n items arrived."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.source: Any = None  # what feeds it, kept alive: awscrt closes a stream once it is collected
        self._cond = threading.Condition()

    def __call__(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Any]:
        with self._cond:
            arrived = self._cond.wait_for(lambda: len(self.items) >= count, timeout)
            assert arrived, f"{len(self.items)} of {count} within {timeout} s: {self.items[-3:]}"
            items = list(self.items)
        assert None not in items, f"the SDK could not parse a payload (callback got None): {items}"
        return items


@pytest.fixture
def broker(start_mosquitto: StartMosquitto, tls_material: TlsMaterial) -> MosquittoProcess:
    """Mosquitto of the test's own: mutual TLS, and a device may use only its own `$aws/things/<CN>/#`."""
    return start_mosquitto(tls=tls_material, acl=THING_ACL)


@pytest.fixture
def plane(broker: MosquittoProcess, tls_material: TlsMaterial) -> Iterator[JobsDataPlane]:
    """Our jobs data plane attached to `broker` as the client "cloud" (the `local` profile's wiring)."""
    bus = PahoMessageBus(
        broker.host,
        broker.port,
        "jobs-data-plane",
        tls_material.client(CLOUD),
        reconnect_delay=FAST_RECONNECT,
        operation_timeout=TIMEOUT,
    )
    bus.connect(timeout=TIMEOUT)
    frontend = BusJobsFrontend(bus, WallClock())
    yield frontend.plane
    frontend.close()
    bus.close()


Connect = Callable[[str], Any]


@pytest.fixture
def sdk_v1(broker: MosquittoProcess, tls_material: TlsMaterial) -> Iterator[Connect]:
    """Factory: `IotJobsClient` of thing `name` over a connected MQTT 3.1.1 mTLS connection."""
    connections: list[mqtt.Connection] = []

    def connect(thing: str) -> iotjobs.IotJobsClient:
        files = tls_material.client(thing)
        connection = mqtt_connection_builder.mtls_from_path(
            endpoint=broker.host,  # 127.0.0.1: in the server certificate's subjectAltName
            port=broker.port,
            cert_filepath=str(files.cert),
            pri_key_filepath=str(files.key),
            ca_filepath=str(files.ca),
            client_id=thing,
            clean_session=True,
            keep_alive_secs=30,
        )
        connection.connect().result(TIMEOUT)
        connections.append(connection)
        return iotjobs.IotJobsClient(connection)

    yield connect
    for connection in connections:
        connection.disconnect().result(TIMEOUT)


@pytest.fixture
def sdk_v2(broker: MosquittoProcess, tls_material: TlsMaterial) -> Iterator[Connect]:
    """Factory: `IotJobsClientV2` of thing `name` over a started MQTT5 mTLS client."""
    stops: list[tuple[mqtt5.Client, threading.Event]] = []

    def connect(thing: str) -> iotjobs.IotJobsClientV2:
        files = tls_material.client(thing)
        connected, stopped = threading.Event(), threading.Event()
        client = mqtt5_client_builder.mtls_from_path(
            endpoint=broker.host,
            port=broker.port,
            cert_filepath=str(files.cert),
            pri_key_filepath=str(files.key),
            ca_filepath=str(files.ca),
            client_id=thing,
            on_lifecycle_connection_success=lambda _event: connected.set(),
            on_lifecycle_stopped=lambda _event: stopped.set(),
        )
        client.start()
        stops.append((client, stopped))
        assert connected.wait(TIMEOUT), f"{thing}: no MQTT5 connection within {TIMEOUT} s"
        options = mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=4, max_streaming_subscriptions=2, operation_timeout_in_seconds=5
        )
        return iotjobs.IotJobsClientV2(client, options)

    yield connect
    for client, stopped in stops:
        client.stop()
        assert stopped.wait(TIMEOUT)


def subscribed(*futures: tuple[Future[Any], str]) -> None:
    """Wait for the SUBACKs of SDK subscriptions (each a (future, topic) pair)."""
    for future, topic in futures:
        assert future.result(TIMEOUT) is not None, topic


def next_job_stream(jobs: iotjobs.IotJobsClientV2, thing: str) -> Inbox:
    """The events of an open `notify-next` stream of `jobs` (its SUBACK is in; the inbox holds the stream)."""
    events, established = Inbox(), threading.Event()
    failures: list[Any] = []
    stream = jobs.create_next_job_execution_changed_stream(
        iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=thing),
        ServiceStreamOptions(
            incoming_event_listener=events,
            subscription_status_listener=lambda event: established.set(),
            deserialization_failure_listener=failures.append,
        ),
    )
    stream.open()
    events.source = stream
    assert established.wait(TIMEOUT) and not failures
    return events


def run_next_job_v2(jobs: iotjobs.IotJobsClientV2, thing: str) -> str:
    """start-next, then SUCCEEDED with the expected version; returns the job id."""
    started = jobs.start_next_pending_job_execution(
        iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing)
    ).result(TIMEOUT)
    execution = started.execution
    assert execution.status == "IN_PROGRESS" and execution.job_document == DOCUMENT
    jobs.update_job_execution(
        iotjobs.UpdateJobExecutionRequest(
            thing_name=thing, job_id=execution.job_id, status="SUCCEEDED", expected_version=execution.version_number
        )
    ).result(TIMEOUT)
    return str(execution.job_id)


def eventually(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for what moto shows a moment after the device heard about it (the bridge writes it)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.02)


def test_iot_jobs_client_mqtt3_runs_a_job_to_succeeded(plane: JobsDataPlane, sdk_v1: Connect) -> None:
    thing, job = "press-v1", "ota-v1"
    jobs: iotjobs.IotJobsClient = sdk_v1(thing)
    next_changed, changed = Inbox(), Inbox()
    started, start_rejected, updated, update_rejected = Inbox(), Inbox(), Inbox(), Inbox()
    start_topic = iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name=thing)
    update_topic = iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=thing, job_id=job)
    subscribed(
        jobs.subscribe_to_next_job_execution_changed_events(
            iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=thing), QOS1, next_changed
        ),
        jobs.subscribe_to_job_executions_changed_events(
            iotjobs.JobExecutionsChangedSubscriptionRequest(thing_name=thing), QOS1, changed
        ),
        jobs.subscribe_to_start_next_pending_job_execution_accepted(start_topic, QOS0, started),
        jobs.subscribe_to_start_next_pending_job_execution_rejected(start_topic, QOS0, start_rejected),
        jobs.subscribe_to_update_job_execution_accepted(update_topic, QOS0, updated),
        jobs.subscribe_to_update_job_execution_rejected(update_topic, QOS0, update_rejected),
    )

    plane.create_job(JobSpec(job_id=job, targets=[thing_arn(thing)], document=DOCUMENT))

    queued = next_changed.wait_for(1)[0]
    assert queued.execution.job_id == job and queued.execution.status == "QUEUED"
    assert queued.execution.job_document == DOCUMENT and recent(queued.timestamp)
    assert [s.job_id for s in changed.wait_for(1)[0].jobs["QUEUED"]] == [job]

    request = iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing, client_token="start-1")
    jobs.publish_start_next_pending_job_execution(request, QOS1).result(TIMEOUT)
    reply = started.wait_for(1)[0]
    execution = reply.execution
    assert reply.client_token == "start-1" and recent(reply.timestamp)
    assert (execution.job_id, execution.status, execution.version_number) == (job, "IN_PROGRESS", 2)
    assert execution.job_document == DOCUMENT and execution.execution_number == 1
    assert all(recent(t) for t in (execution.queued_at, execution.started_at, execution.last_updated_at))

    update = iotjobs.UpdateJobExecutionRequest(
        thing_name=thing,
        job_id=job,
        status="SUCCEEDED",
        status_details={"info": "model loaded"},
        expected_version=execution.version_number,
        client_token="update-1",
    )
    jobs.publish_update_job_execution(update, QOS1).result(TIMEOUT)
    assert updated.wait_for(1)[0].client_token == "update-1"
    assert start_rejected.items == [] and update_rejected.items == []
    state = plane.describe_job_execution(job, thing)["execution"]
    assert state["status"] == "SUCCEEDED" and state["statusDetails"]["detailsMap"] == {"info": "model loaded"}
    assert next_changed.wait_for(2)[1].execution is None  # nothing pending any more

    # A terminal execution refuses further updates; the rejection echoes the token and parses.
    update.client_token, update.expected_version = "update-2", None
    jobs.publish_update_job_execution(update, QOS1).result(TIMEOUT)
    rejection = update_rejected.wait_for(1)[0]
    assert (rejection.client_token, rejection.code) == ("update-2", "InvalidStateTransition")
    assert rejection.execution_state.status == "SUCCEEDED" and recent(rejection.timestamp)


def test_iot_jobs_client_v2_mqtt5_request_response_runs_a_job_to_succeeded(
    plane: JobsDataPlane, sdk_v2: Connect
) -> None:
    thing, job = "press-v2", "ota-v2"
    jobs: iotjobs.IotJobsClientV2 = sdk_v2(thing)
    next_changed = next_job_stream(jobs, thing)
    pending = jobs.get_pending_job_executions(iotjobs.GetPendingJobExecutionsRequest(thing_name=thing))
    nothing = pending.result(TIMEOUT)
    assert nothing.in_progress_jobs == [] and nothing.queued_jobs == [] and recent(nothing.timestamp)

    plane.create_job(JobSpec(job_id=job, targets=[thing_arn(thing)], document=DOCUMENT))

    assert next_changed.wait_for(1)[0].execution.job_id == job
    pending = jobs.get_pending_job_executions(iotjobs.GetPendingJobExecutionsRequest(thing_name=thing))
    listed = pending.result(TIMEOUT)
    assert [(s.job_id, s.version_number) for s in listed.queued_jobs] == [(job, 1)]
    assert recent(listed.queued_jobs[0].queued_at)
    started = jobs.start_next_pending_job_execution(
        iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing, step_timeout_minutes=10)
    ).result(TIMEOUT)
    execution = started.execution
    assert (execution.job_id, execution.status, execution.version_number) == (job, "IN_PROGRESS", 2)
    assert execution.job_document == DOCUMENT and recent(execution.started_at)
    for job_id in (job, "$next"):
        described = jobs.describe_job_execution(
            iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id=job_id)
        ).result(TIMEOUT)
        assert (described.execution.job_id, described.execution.status) == (job, "IN_PROGRESS")
        assert described.execution.job_document == DOCUMENT

    done = jobs.update_job_execution(
        iotjobs.UpdateJobExecutionRequest(
            thing_name=thing,
            job_id=job,
            status="SUCCEEDED",
            expected_version=2,
            status_details={"info": "model loaded"},
            include_job_execution_state=True,
        )
    ).result(TIMEOUT)
    assert (done.execution_state.status, done.execution_state.version_number) == ("SUCCEEDED", 3)
    assert plane.describe_job_execution(job, thing)["execution"]["status"] == "SUCCEEDED"
    assert next_changed.wait_for(2)[1].execution is None

    # Rejected replies echo the clientToken too: the future fails with the modeled error, not a timeout.
    with pytest.raises(V2ServiceException) as refused:
        jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(thing_name=thing, job_id=job, status="FAILED", expected_version=3)
        ).result(TIMEOUT)
    assert refused.value.modeled_error is not None, refused.value.inner_error
    assert refused.value.modeled_error.code == "InvalidStateTransition"
    no_such_job = iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id="no-such-job")
    with pytest.raises(V2ServiceException) as unknown:
        jobs.describe_job_execution(no_such_job).result(TIMEOUT)
    assert unknown.value.modeled_error is not None and unknown.value.modeled_error.code == "ResourceNotFound"


def test_a_job_to_a_thing_group_reaches_an_mqtt3_and_an_mqtt5_member(
    plane: JobsDataPlane, sdk_v1: Connect, sdk_v2: Connect
) -> None:
    group, job, v1_thing, v2_thing = "line-1", "ota-group", "press-g1", "press-g2"
    for thing in (v1_thing, v2_thing):
        plane.add_thing_to_group(thing, group)
    v1: iotjobs.IotJobsClient = sdk_v1(v1_thing)
    v1_next, v1_started, v1_updated = Inbox(), Inbox(), Inbox()
    subscribed(
        v1.subscribe_to_next_job_execution_changed_events(
            iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=v1_thing), QOS1, v1_next
        ),
        v1.subscribe_to_start_next_pending_job_execution_accepted(
            iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name=v1_thing), QOS0, v1_started
        ),
        v1.subscribe_to_update_job_execution_accepted(
            iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=v1_thing, job_id=job), QOS0, v1_updated
        ),
    )
    v2: iotjobs.IotJobsClientV2 = sdk_v2(v2_thing)
    v2_next = next_job_stream(v2, v2_thing)

    plane.create_job(JobSpec(job_id=job, targets=[group_arn(group)], document=DOCUMENT))

    assert v1_next.wait_for(1)[0].execution.job_id == job
    assert v2_next.wait_for(1)[0].execution.job_id == job
    v1.publish_start_next_pending_job_execution(
        iotjobs.StartNextPendingJobExecutionRequest(thing_name=v1_thing), QOS1
    ).result(TIMEOUT)
    assert v1_started.wait_for(1)[0].execution.version_number == 2
    v1.publish_update_job_execution(
        iotjobs.UpdateJobExecutionRequest(thing_name=v1_thing, job_id=job, status="SUCCEEDED", expected_version=2),
        QOS1,
    ).result(TIMEOUT)
    v1_updated.wait_for(1)
    assert run_next_job_v2(v2, v2_thing) == job

    summaries = plane.list_job_executions_for_job(job)
    # One execution per member thing, none named after the group (moto's mistake, issue 4).
    assert sorted(s["thingArn"] for s in summaries) == [thing_arn(v1_thing), thing_arn(v2_thing)]
    assert {s["jobExecutionSummary"]["status"] for s in summaries} == {"SUCCEEDED"}


def test_a_continuous_job_reaches_a_thing_added_to_the_group_afterwards(plane: JobsDataPlane, sdk_v2: Connect) -> None:
    group, continuous, snapshot = "line-2", "ota-continuous", "ota-snapshot"
    member, newcomer = "press-c1", "press-c2"
    plane.add_thing_to_group(member, group)
    member_jobs: iotjobs.IotJobsClientV2 = sdk_v2(member)
    newcomer_jobs: iotjobs.IotJobsClientV2 = sdk_v2(newcomer)
    member_next = next_job_stream(member_jobs, member)
    newcomer_next = next_job_stream(newcomer_jobs, newcomer)

    plane.create_job(
        JobSpec(job_id=continuous, targets=[group_arn(group)], document=DOCUMENT, target_selection="CONTINUOUS")
    )
    plane.create_job(JobSpec(job_id=snapshot, targets=[group_arn(group)], document=DOCUMENT))
    assert member_next.wait_for(1)[0].execution.job_id == continuous
    assert run_next_job_v2(member_jobs, member) == continuous
    assert run_next_job_v2(member_jobs, member) == snapshot
    assert newcomer_next.items == []  # not a member yet: nothing for it

    plane.add_thing_to_group(newcomer, group)

    arrived = newcomer_next.wait_for(1)[0].execution
    assert (arrived.job_id, arrived.status, arrived.job_document) == (continuous, "QUEUED", DOCUMENT)
    pending = newcomer_jobs.get_pending_job_executions(
        iotjobs.GetPendingJobExecutionsRequest(thing_name=newcomer)
    ).result(TIMEOUT)
    assert [s.job_id for s in pending.queued_jobs] == [continuous]  # the SNAPSHOT job does not follow
    assert run_next_job_v2(newcomer_jobs, newcomer) == continuous
    summaries = plane.list_job_executions_for_job(continuous)
    statuses = {s["thingArn"]: s["jobExecutionSummary"]["status"] for s in summaries}
    assert statuses == {thing_arn(member): "SUCCEEDED", thing_arn(newcomer): "SUCCEEDED"}
    assert [s["thingArn"] for s in plane.list_job_executions_for_job(snapshot)] == [thing_arn(member)]


def test_boto3_sees_the_executions_sdk_devices_ran_on_the_local_profile(
    broker: MosquittoProcess,
    tls_material: TlsMaterial,
    sdk_v1: Connect,
    sdk_v2: Connect,
    unique_name: Callable[[str], str],
) -> None:
    """The same through `SimulatedCloud("local")`: jobs and group members come from boto3 (moto server)."""
    with SimulatedCloud("local", mqtt_url=broker.url, tls=tls_material, project=unique_name("sdk")) as cloud:
        iot, member, newcomer = cloud.client("iot"), cloud.project.thing_name, unique_name("press")
        member_jobs: iotjobs.IotJobsClientV2 = sdk_v2(member)
        member_next = next_job_stream(member_jobs, member)
        newcomer_jobs: iotjobs.IotJobsClient = sdk_v1(newcomer)
        newcomer_next, newcomer_started, newcomer_updated = Inbox(), Inbox(), Inbox()
        subscribed(
            newcomer_jobs.subscribe_to_next_job_execution_changed_events(
                iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=newcomer), QOS1, newcomer_next
            ),
            newcomer_jobs.subscribe_to_start_next_pending_job_execution_accepted(
                iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name=newcomer), QOS0, newcomer_started
            ),
        )
        job = unique_name("ota")
        iot.create_job(
            jobId=job,
            targets=[cloud.project.thing_group_arn],
            document=json.dumps(DOCUMENT),
            targetSelection="CONTINUOUS",
        )

        assert member_next.wait_for(1)[0].execution.job_id == job
        assert run_next_job_v2(member_jobs, member) == job
        eventually(
            lambda: iot.describe_job_execution(jobId=job, thingName=member)["execution"]["status"] == "SUCCEEDED"
        )

        iot.create_thing(thingName=newcomer)
        iot.add_thing_to_thing_group(thingGroupName=cloud.project.thing_group_name, thingName=newcomer)
        assert newcomer_next.wait_for(1)[0].execution.job_id == job
        subscribed(
            newcomer_jobs.subscribe_to_update_job_execution_accepted(
                iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=newcomer, job_id=job), QOS0, newcomer_updated
            )
        )
        start = iotjobs.StartNextPendingJobExecutionRequest(thing_name=newcomer)
        newcomer_jobs.publish_start_next_pending_job_execution(start, QOS1).result(TIMEOUT)
        version = newcomer_started.wait_for(1)[0].execution.version_number
        update = iotjobs.UpdateJobExecutionRequest(
            thing_name=newcomer, job_id=job, status="SUCCEEDED", expected_version=version
        )
        newcomer_jobs.publish_update_job_execution(update, QOS1).result(TIMEOUT)
        newcomer_updated.wait_for(1)

        def statuses() -> dict[str, str]:
            listed = iot.list_job_executions_for_job(jobId=job)["executionSummaries"]
            return {e["thingArn"].rsplit("/", 1)[1]: e["jobExecutionSummary"]["status"] for e in listed}

        eventually(lambda: statuses() == {member: "SUCCEEDED", newcomer: "SUCCEEDED"})
