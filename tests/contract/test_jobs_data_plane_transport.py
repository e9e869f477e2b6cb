"""The jobs data plane over every MQTT backend: a device runs a job end to end.

On the simulated broker the plane answers the requester only; on Mosquitto it is a client whose
replies every subscriber of the reply topic sees (DESIGN.md section 3.2).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulators.iot_jobs.frontends import BrokerJobsFrontend, BusJobsFrontend
from system.clock import WallClock
from system.ports import JobSpec, Message
from tests.mqtt_fixtures import CLOUD, Collector, MemoryBackend, MqttBackend

THING = "press-7"
P = f"$aws/things/{THING}/jobs"
DOCUMENT = {
    "type": "new_model",
    "model_name": "unet",
    "model_version": "2",
    "model_package_bucket": "b",
    "model_package_key": "k/unet-2.tar.gz",
}


def _plane(backend: MqttBackend) -> Any:
    if isinstance(backend, MemoryBackend):
        return BrokerJobsFrontend(backend.broker, WallClock())
    return BusJobsFrontend(backend.bus("jobs-data-plane", identity=CLOUD), WallClock())


def _json(message: Message) -> dict[str, Any]:
    return json.loads(message.payload)


def test_a_device_runs_a_job_start_next_in_progress_succeeded(mqtt_backend: MqttBackend) -> None:
    frontend = _plane(mqtt_backend)
    try:
        device = mqtt_backend.bus(THING)
        notify_next, accepted, update_accepted = Collector(), Collector(), Collector()
        device.subscribe(f"{P}/notify-next", notify_next)
        device.subscribe(f"{P}/start-next/accepted", accepted)
        device.subscribe(f"{P}/ota-1/update/accepted", update_accepted)
        frontend.plane.create_job(
            JobSpec(job_id="ota-1", targets=[f"arn:aws:iot:us-east-1:123456789012:thing/{THING}"], document=DOCUMENT)
        )
        queued = _json(notify_next.wait_for(1)[0])["execution"]
        assert queued["jobId"] == "ota-1" and queued["status"] == "QUEUED" and queued["jobDocument"] == DOCUMENT
        device.publish(f"{P}/start-next", json.dumps({"clientToken": "t-1", "stepTimeoutInMinutes": 5}).encode(), qos=1)
        started = _json(accepted.wait_for(1)[0])
        assert started["clientToken"] == "t-1"
        assert started["execution"]["status"] == "IN_PROGRESS" and started["execution"]["versionNumber"] == 2
        device.publish(
            f"{P}/ota-1/update",
            json.dumps(
                {
                    "status": "SUCCEEDED",
                    "expectedVersion": 2,
                    "statusDetails": {"info": "model loaded"},
                    "clientToken": "t-2",
                }
            ).encode(),
            qos=1,
        )
        assert _json(update_accepted.wait_for(1)[0])["clientToken"] == "t-2"
        emptied = _json(notify_next.wait_for(2)[1])
        assert "execution" not in emptied  # the list is empty: notify-next carries only a timestamp
        execution = frontend.plane.describe_job_execution("ota-1", THING)["execution"]
        assert execution["status"] == "SUCCEEDED" and execution["statusDetails"]["detailsMap"] == {
            "info": "model loaded"
        }
    finally:
        frontend.close()


def test_on_the_simulated_broker_a_reply_reaches_only_the_requester() -> None:
    backend = MemoryBackend()
    frontend = _plane(backend)
    try:
        device = backend.bus(THING)
        eavesdropper = backend.bus("observer", identity=CLOUD)
        seen = Collector()
        eavesdropper.subscribe(f"{P}/get/accepted", seen)
        mine = Collector()
        device.subscribe(f"{P}/get/accepted", mine)
        device.publish(f"{P}/get", b'{"clientToken": "c"}', qos=1)
        reply = _json(mine.wait_for(1)[0])
        assert reply == {"inProgressJobs": [], "queuedJobs": [], "timestamp": reply["timestamp"], "clientToken": "c"}
        assert seen.messages == []
        assert len(mine.messages) == 1  # once, although the device also subscribed
    finally:
        frontend.close()
        backend.close()


def test_a_device_may_not_touch_another_things_jobs_on_the_simulated_broker() -> None:
    from system.errors import NotAuthorizedError

    backend = MemoryBackend()
    frontend = _plane(backend)
    try:
        device = backend.bus(THING)
        with pytest.raises(NotAuthorizedError):
            device.publish("$aws/things/other-thing/jobs/start-next", b"{}", qos=1)
        assert backend.broker.record.denials
    finally:
        frontend.close()
        backend.close()
