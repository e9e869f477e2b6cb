"""IotJobsDeviceClient against the IoT Jobs simulator on the simulated broker (no moto), plus its failures.

The simulator answers only the requester, as AWS IoT does (simulators/iot_jobs/frontends.py); the
failure paths (no reply, a stray reply, a refused publish) use `ScriptedBus`, a tiny fake bus.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from simulators.broker import InMemoryMessageBus, SimulatedBroker, matches
from simulators.iot_jobs.frontends import BrokerJobsFrontend
from system.clock import WallClock
from system.edge.jobs_client import IotJobsDeviceClient
from system.errors import JobsError
from system.ports import JobSpec, Message, MessageHandler

WAIT = 5.0  # bound on every wait for something that should happen promptly
SHORT = 0.05  # the request timeout of the tests where no reply can come


def document(version: str = "2") -> dict[str, Any]:
    return {
        "type": "new_model",
        "model_name": "unet",
        "model_version": version,
        "model_package_bucket": "edgesim-bucket",
        "model_package_key": f"models/unet-{version}.tar.gz",
    }


class Notes:
    """A notify / notify-next handler that keeps the payloads; `wait_for(n)` blocks until n came."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, payload: dict[str, Any]) -> None:
        with self._cond:
            self.payloads.append(payload)
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        with self._cond:
            arrived = self._cond.wait_for(lambda: len(self.payloads) >= count, WAIT)
            assert arrived, f"{len(self.payloads)} of {count} notifications within {WAIT} s: {self.payloads}"
            return list(self.payloads)


@dataclass
class Rig:
    """A thing's jobs client on a SimulatedBroker whose IoT Jobs data plane the test drives."""

    thing: str
    broker: SimulatedBroker
    frontend: BrokerJobsFrontend
    bus: InMemoryMessageBus
    client: IotJobsDeviceClient
    notify_next: Notes
    notify: Notes

    def create_job(self, job_id: str, version: str = "2") -> None:
        arn = f"arn:aws:iot:us-east-1:123456789012:thing/{self.thing}"
        self.frontend.plane.create_job(JobSpec(job_id=job_id, targets=[arn], document=document(version)))

    def reply_topic(self, suffix: str) -> str:
        return f"$aws/things/{self.thing}/jobs/{suffix}"


@pytest.fixture
def rig() -> Iterator[Rig]:
    thing = f"press-{uuid.uuid4().hex[:8]}"
    broker = SimulatedBroker()
    frontend = BrokerJobsFrontend(broker, WallClock())
    bus = InMemoryMessageBus(broker, thing)
    notify_next, notify = Notes(), Notes()
    # Subscribed before the bus connects, as the device does.
    client = IotJobsDeviceClient(bus, thing, timeout=WAIT, on_notify_next=notify_next, on_notify=notify)
    bus.connect()
    try:
        yield Rig(thing, broker, frontend, bus, client, notify_next, notify)
    finally:
        client.close()
        bus.close()
        frontend.close()
        broker.close()
    assert bus.handlers.errors == [], "a handler of the client raised"


# Against the simulator


def test_start_next_returns_none_when_nothing_is_pending(rig: Rig) -> None:
    assert rig.client.start_next() is None


def test_a_created_job_starts_in_progress_with_its_document(rig: Rig) -> None:
    rig.create_job("ota-unet-2")
    execution = rig.client.start_next(status_details={"step": "accepted"}, step_timeout_minutes=10)
    assert execution is not None
    assert execution["jobId"] == "ota-unet-2" and execution["status"] == "IN_PROGRESS"
    assert execution["jobDocument"] == document()
    assert execution["statusDetails"] == {"step": "accepted"}
    again = rig.client.start_next()  # AWS hands an IN_PROGRESS execution out again before any QUEUED one
    assert again is not None and (again["jobId"], again["status"]) == ("ota-unet-2", "IN_PROGRESS")


def test_describe_returns_the_execution_with_its_document(rig: Rig) -> None:
    rig.create_job("ota-unet-2")
    execution = rig.client.describe("ota-unet-2")
    assert execution["jobId"] == "ota-unet-2" and execution["status"] == "QUEUED"
    assert execution["jobDocument"] == document()
    assert rig.client.describe("ota-unet-2", execution_number=1)["executionNumber"] == 1


def test_update_to_succeeded_ends_the_execution(rig: Rig) -> None:
    rig.create_job("ota-unet-2")
    rig.client.start_next()
    reply = rig.client.update("ota-unet-2", "SUCCEEDED", status_details={"outcome": "SUCCEEDED"})
    assert reply["executionState"]["status"] == "SUCCEEDED"
    execution = rig.frontend.plane.describe_job_execution("ota-unet-2", rig.thing)["execution"]
    assert execution["status"] == "SUCCEEDED"
    assert execution["statusDetails"]["detailsMap"] == {"outcome": "SUCCEEDED"}


def test_updating_a_terminal_execution_is_refused_with_invalid_state_transition(rig: Rig) -> None:
    rig.create_job("ota-unet-2")
    rig.client.start_next()
    rig.client.update("ota-unet-2", "SUCCEEDED")
    with pytest.raises(JobsError) as caught:
        rig.client.update("ota-unet-2", "FAILED")
    assert caught.value.code == "InvalidStateTransition"


def test_describing_an_unknown_job_is_resource_not_found(rig: Rig) -> None:
    with pytest.raises(JobsError) as caught:
        rig.client.describe("no-such-job")
    assert caught.value.code == "ResourceNotFound"


def test_notify_next_fires_when_a_job_is_created(rig: Rig) -> None:
    rig.create_job("ota-unet-2")
    [note] = rig.notify_next.wait_for(1)
    assert note["execution"]["jobId"] == "ota-unet-2" and note["execution"]["status"] == "QUEUED"


def test_notify_lists_the_pending_jobs(rig: Rig) -> None:
    rig.create_job("ota-unet-2")
    [note] = rig.notify.wait_for(1)
    assert [job["jobId"] for job in note["jobs"]["QUEUED"]] == ["ota-unet-2"]


def test_replies_nobody_waits_for_and_non_json_messages_are_ignored(rig: Rig) -> None:
    stray = json.dumps({"clientToken": "someone-else", "execution": {"jobId": "x"}}).encode()
    rig.broker.publish_as_broker(rig.reply_topic("start-next/accepted"), stray, qos=1)
    rig.broker.publish_as_broker(rig.reply_topic("ota-unet-2/get/rejected"), b"not json", qos=1)
    rig.broker.publish_as_broker(rig.reply_topic("notify-next"), b"[1, 2]", qos=1)
    rig.create_job("ota-unet-2")
    # Handlers run in order on the bus's lane, so the notification comes after the stray messages.
    assert len(rig.notify_next.wait_for(1)) == 1
    execution = rig.client.start_next()
    assert execution is not None and execution["jobId"] == "ota-unet-2"


def test_a_publish_on_a_disconnected_bus_is_unavailable() -> None:
    broker = SimulatedBroker()
    bus = InMemoryMessageBus(broker, "press-offline")
    client = IotJobsDeviceClient(bus, "press-offline", timeout=WAIT)
    try:
        with pytest.raises(JobsError) as caught:
            client.start_next()
        assert caught.value.code == "Unavailable"
        assert "not connected" in str(caught.value)
    finally:
        client.close()
        broker.close()


# Failures, on a scripted bus


Script = Callable[[str, dict[str, Any]], list[tuple[str, dict[str, Any]]]]


@dataclass
class ScriptedBus:
    """A MessageBus fake: records publishes and answers each with the messages `script` returns.

    Limits: replies are delivered synchronously inside `publish` (a real bus delivers on its own
    lane); no QoS, retained messages or reconnects.
    """

    script: Script = field(default=lambda topic, payload: [])
    client_id: str = "scripted"
    connected: bool = True
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    handlers: list[tuple[str, MessageHandler]] = field(default_factory=list)

    def connect(self, timeout: float = 10.0) -> None:
        self.connected = True

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        request = json.loads(payload)
        self.published.append((topic, request))
        for reply_topic, reply in self.script(topic, request):
            message = Message(reply_topic, json.dumps(reply).encode(), 1)
            for topic_filter, handler in list(self.handlers):
                if matches(topic_filter, reply_topic):
                    handler(message)

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> Any:
        entry = (topic_filter, handler)
        self.handlers.append(entry)
        return _Cancel(lambda: self.handlers.remove(entry))

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.connected = False


@dataclass
class _Cancel:
    cancel: Callable[[], None]


P = "$aws/things/press-7/jobs"


def test_a_request_without_a_reply_times_out() -> None:
    bus = ScriptedBus()
    client = IotJobsDeviceClient(bus, "press-7", timeout=SHORT)
    with pytest.raises(JobsError) as caught:
        client.describe("ota-unet-2")
    assert caught.value.code == "Timeout"
    [(topic, request)] = bus.published
    assert topic == f"{P}/ota-unet-2/get" and request["includeJobDocument"] is True and request["clientToken"]


def test_a_reply_with_another_client_token_does_not_complete_the_request() -> None:
    def stray_only(topic: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{topic}/accepted", {"clientToken": "someone-else", "execution": {"jobId": "x"}})]

    client = IotJobsDeviceClient(ScriptedBus(stray_only), "press-7", timeout=SHORT)
    with pytest.raises(JobsError) as caught:
        client.start_next()
    assert caught.value.code == "Timeout"


def test_the_reply_with_the_requests_token_completes_it_after_a_stray_one() -> None:
    def stray_then_own(topic: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [
            (f"{topic}/accepted", {"clientToken": "someone-else", "execution": {"jobId": "theirs"}}),
            (f"{topic}/accepted", {"clientToken": request["clientToken"], "execution": {"jobId": "ours"}}),
        ]

    client = IotJobsDeviceClient(ScriptedBus(stray_then_own), "press-7", timeout=WAIT)
    execution = client.start_next()
    assert execution == {"jobId": "ours"}


def test_a_rejected_reply_carries_the_aws_error_code() -> None:
    def refuse(topic: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        reply = {"clientToken": request["clientToken"], "code": "VersionMismatch", "message": "expected 2"}
        return [(f"{topic}/rejected", reply)]

    client = IotJobsDeviceClient(ScriptedBus(refuse), "press-7", timeout=WAIT)
    with pytest.raises(JobsError, match="VersionMismatch: expected 2") as caught:
        client.update("ota-unet-2", "IN_PROGRESS", execution_number=1, step_timeout_minutes=5)
    assert caught.value.code == "VersionMismatch"


def test_an_update_sends_the_documented_fields() -> None:
    def accept(topic: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{topic}/accepted", {"clientToken": request["clientToken"]})]

    bus = ScriptedBus(accept)
    client = IotJobsDeviceClient(bus, "press-7", timeout=WAIT)
    client.update("ota-unet-2", "FAILED", status_details={"reason": "bad sha256"}, step_timeout_minutes=3)
    [(topic, request)] = bus.published
    assert topic == f"{P}/ota-unet-2/update"
    assert {k: v for k, v in request.items() if k != "clientToken"} == {
        "status": "FAILED",
        "includeJobExecutionState": True,
        "statusDetails": {"reason": "bad sha256"},
        "stepTimeoutInMinutes": 3,
    }


def test_a_describe_reply_without_an_execution_is_an_internal_error() -> None:
    def empty(topic: str, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{topic}/accepted", {"clientToken": request["clientToken"], "timestamp": 1})]

    client = IotJobsDeviceClient(ScriptedBus(empty), "press-7", timeout=WAIT)
    with pytest.raises(JobsError) as caught:
        client.describe("ota-unet-2")
    assert caught.value.code == "InternalError"


def test_close_cancels_every_subscription() -> None:
    bus = ScriptedBus()
    client = IotJobsDeviceClient(bus, "press-7")
    assert {f for f, _ in bus.handlers} >= {f"{P}/start-next/accepted", f"{P}/+/update/rejected", f"{P}/notify-next"}
    client.close()
    assert bus.handlers == []
