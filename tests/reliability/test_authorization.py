"""Per-thing authorization, counted: every thing of a small fleet tries every other thing's jobs topics
(subscribe to its replies and notifications, publish its requests) on each broker that knows
identities, and nothing crosses. The simulated broker refuses (NotAuthorizedError, recorded as a
denial); Mosquitto's ACL, which cannot refuse under MQTT 3.1.1, drops. `EDGESIM_AUTH_RESULTS` names a
JSON file for RELIABILITY.md."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from system.errors import NotAuthorizedError
from tests.mqtt_fixtures import CLOUD, Collector, MqttBackend
from tests.reliability.reporting import Report, register

THINGS = 4
OPERATIONS = ("start-next", "get", "j-1/update", "j-1/get")
COUNTS: Counter[str] = Counter()


@pytest.mark.parametrize("mqtt_backend", ["memory", "mosquitto-tls", "mosquitto-tls-awscrt"], indirect=True)
def test_no_thing_reaches_another_things_jobs(mqtt_backend: MqttBackend) -> None:
    run = uuid.uuid4().hex[:6]
    things = [f"auth-{run}-{n}" for n in range(THINGS)]
    cloud_seen = Collector()
    cloud = mqtt_backend.bus(f"cloud-{run}", identity=CLOUD)
    cloud.subscribe("$aws/things/+/jobs/#", cloud_seen, qos=1)
    buses = {thing: mqtt_backend.bus(f"{thing}-c", identity=thing) for thing in things}
    stolen = Collector()
    attempts = refused = 0
    for thing, bus in buses.items():
        for other in things:
            if other == thing:
                continue
            for action in ("subscribe", *OPERATIONS):
                attempts += 1
                try:
                    if action == "subscribe":
                        bus.subscribe(f"$aws/things/{other}/jobs/#", stolen, qos=1)
                    else:
                        bus.publish(f"$aws/things/{other}/jobs/{action}", b'{"forged": true}', qos=1)
                except NotAuthorizedError:
                    refused += 1
    for other in things:  # something for every thing's subscribers to steal
        cloud.publish(f"$aws/things/{other}/jobs/notify-next", b'{"execution": null}', qos=1)
    for thing, bus in buses.items():  # each thing's own request, after its forged ones on the same connection
        bus.publish(f"$aws/things/{thing}/jobs/get", b"{}", qos=1)
    seen = cloud_seen.wait_for(2 * THINGS)  # the notifications and the own requests, not the forged ones
    assert {m.topic for m in seen if m.payload == b"{}"} == {f"$aws/things/{t}/jobs/get" for t in things}
    forged = [m for m in seen if m.payload == b'{"forged": true}']
    assert forged == [] and stolen.messages == []
    assert refused == (attempts if mqtt_backend.authorizes_subscriptions else 0)
    COUNTS["attempts"] += attempts
    COUNTS[f"refused ({mqtt_backend.name})"] += refused
    COUNTS[f"dropped ({mqtt_backend.name})"] += attempts - refused


register(
    "authorization",
    Report(
        env="EDGESIM_AUTH_RESULTS",
        ran=lambda: COUNTS["attempts"] > 0,
        line=lambda: f"cross-thing attempts: {COUNTS['attempts']}, none got through ({dict(COUNTS)})",
        results=lambda: dict(COUNTS),
    ),
)
