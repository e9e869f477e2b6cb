"""The MessageBus contract: one body per behaviour, run on every backend (tests/mqtt_fixtures.py).

Backends: the simulated broker with InMemoryMessageBus, PahoMessageBus on a Mosquitto of the
test's own over TCP and over mutual TLS, and AwsIotMessageBus (awscrt) on that TLS Mosquitto.
Absence is proven without sleeping: a marker message published afterwards on the same connection
arrives after anything that should not have.
"""

from __future__ import annotations

import uuid

import pytest

from simulators.certificates import TlsMaterial
from system.adapters.paho_bus import PahoMessageBus
from system.errors import MessageBusError
from system.ports import Message
from tests.mqtt_fixtures import CLOUD, Collector, Counter, MosquittoBackend, MqttBackend, StartMosquitto


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("qos", [0, 1])
def test_published_message_reaches_a_subscriber(mqtt_backend: MqttBackend, qos: int) -> None:
    topic = f"edgesim/{unique('t')}/telemetry"
    subscriber, publisher = mqtt_backend.bus(unique("sub")), mqtt_backend.bus(unique("pub"))
    received = Collector()
    subscriber.subscribe(topic, received, qos=qos)

    publisher.publish(topic, b"hello", qos=qos)

    assert received.wait_for(1) == [Message(topic, b"hello", qos, False)]


def test_wildcards_follow_mqtt_rules(mqtt_backend: MqttBackend) -> None:
    base = f"edgesim/{unique('w')}"
    single, multi = Collector(), Collector()
    mqtt_backend.bus(unique("single")).subscribe(f"{base}/+/temp", single)
    mqtt_backend.bus(unique("multi")).subscribe(f"{base}/a/#", multi)
    publisher = mqtt_backend.bus(unique("pub"))

    for topic in ("a/temp", "b/temp", "a", "a/x/y", "b/x/temp", "a/temp"):
        publisher.publish(f"{base}/{topic}", topic.encode(), qos=1)

    assert [m.payload for m in single.wait_for(3)] == [b"a/temp", b"b/temp", b"a/temp"]
    assert [m.payload for m in multi.wait_for(4)] == [b"a/temp", b"a", b"a/x/y", b"a/temp"]


def test_aws_thing_topics_work_and_a_leading_wildcard_does_not_match_them(mqtt_backend: MqttBackend) -> None:
    thing = unique("dev")
    jobs = f"$aws/things/{thing}/jobs"
    everything, jobs_requests, notified = Collector(), Collector(), Collector()
    mqtt_backend.bus(unique("cloud-all"), identity=CLOUD).subscribe("#", everything)
    cloud = mqtt_backend.bus(unique("cloud-jobs"), identity=CLOUD)
    cloud.subscribe("$aws/things/+/jobs/#", jobs_requests)
    device = mqtt_backend.bus(thing)
    device.subscribe(f"{jobs}/notify-next", notified)

    device.publish(f"{jobs}/start-next", b"{}", qos=1)
    device.publish(f"edgesim/{thing}/marker", b"marker", qos=1)
    cloud.publish(f"{jobs}/notify-next", b'{"execution": {}}', qos=1)

    assert [m.topic for m in jobs_requests.wait_for(2)] == [f"{jobs}/start-next", f"{jobs}/notify-next"]
    assert [m.payload for m in notified.wait_for(1)] == [b'{"execution": {}}']
    assert [m.topic for m in everything.wait_for(1)] == [f"edgesim/{thing}/marker"]


def test_a_bus_subscribed_to_hash_and_to_aws_topics_hands_aws_messages_only_to_the_aws_handler(
    mqtt_backend: MqttBackend,
) -> None:
    # The broker sends the `$aws` message once, for the `$aws` filter; awscrt's own dispatch would
    # also give it to the `#` callback of the same connection (feasibility.md section 5).
    thing = unique("dev")
    everything, jobs_requests = Collector(), Collector()
    cloud = mqtt_backend.bus(unique("cloud"), identity=CLOUD)
    cloud.subscribe("#", everything)
    cloud.subscribe(f"$aws/things/{thing}/jobs/#", jobs_requests)
    device = mqtt_backend.bus(thing)

    device.publish(f"$aws/things/{thing}/jobs/start-next", b"{}", qos=1)
    device.publish(f"edgesim/{thing}/marker", b"marker", qos=1)

    assert [m.topic for m in jobs_requests.wait_for(1)] == [f"$aws/things/{thing}/jobs/start-next"]
    assert [m.topic for m in everything.wait_for(1)] == [f"edgesim/{thing}/marker"]


def test_retained_message_reaches_late_subscribers_until_an_empty_one_deletes_it(mqtt_backend: MqttBackend) -> None:
    topic = f"edgesim/{unique('r')}/state"
    publisher = mqtt_backend.bus(unique("pub"))
    live = Collector()
    mqtt_backend.bus(unique("live")).subscribe(topic, live)

    publisher.publish(topic, b"on", qos=1, retain=True)
    late = Collector()
    mqtt_backend.bus(unique("late")).subscribe(topic, late)

    assert live.wait_for(1) == [Message(topic, b"on", 1, False)]  # live delivery: RETAIN 0 (3.3.1.3)
    assert late.wait_for(1) == [Message(topic, b"on", 1, True)]

    publisher.publish(topic, b"", qos=1, retain=True)
    later = Collector()
    mqtt_backend.bus(unique("later")).subscribe(topic, later)
    publisher.publish(topic, b"after", qos=1)
    assert later.wait_for(1)[0].payload == b"after"


def test_cancelled_subscription_gets_nothing_more(mqtt_backend: MqttBackend) -> None:
    base = f"edgesim/{unique('u')}"
    bus, publisher = mqtt_backend.bus(unique("sub")), mqtt_backend.bus(unique("pub"))
    dropped, kept = Collector(), Collector()
    subscription = bus.subscribe(f"{base}/dropped", dropped)
    bus.subscribe(f"{base}/kept", kept)
    publisher.publish(f"{base}/dropped", b"1", qos=1)
    dropped.wait_for(1)

    subscription.cancel()
    publisher.publish(f"{base}/dropped", b"2", qos=1)
    publisher.publish(f"{base}/kept", b"marker", qos=1)

    kept.wait_for(1)
    assert dropped.payloads == [b"1"]


def test_thousand_qos1_messages_arrive_in_order(mqtt_backend: MqttBackend) -> None:
    topic = f"edgesim/{unique('o')}/seq"
    received = Collector()
    mqtt_backend.bus(unique("sub")).subscribe(topic, received, qos=1)
    publisher = mqtt_backend.bus(unique("pub"))

    for number in range(1000):
        publisher.publish(topic, str(number).encode(), qos=1)

    assert [int(m.payload) for m in received.wait_for(1000, timeout=20)] == list(range(1000))


def test_reconnect_resubscribes_and_calls_connect_listeners(mqtt_backend: MqttBackend) -> None:
    topic = f"edgesim/{unique('rc')}/after-restart"
    subscriber, publisher = mqtt_backend.bus(unique("sub"), connect=False), mqtt_backend.bus(unique("pub"))
    received, subscriber_connects, publisher_connects = Collector(), Counter(), Counter()
    subscriber.add_connect_listener(subscriber_connects)
    publisher.add_connect_listener(publisher_connects)
    subscriber.subscribe(topic, received)
    subscriber.connect(timeout=5)
    subscriber_connects.wait_for(1)

    mqtt_backend.restart()

    subscriber_connects.wait_for(2)
    publisher_connects.wait_for(1)
    assert subscriber.connected and publisher.connected
    publisher.publish(topic, b"back", qos=1)
    assert received.wait_for(1)[0].payload == b"back"


def test_persistent_session_gets_qos1_messages_sent_while_away(mqtt_backend: MqttBackend) -> None:
    topic, client_id = f"edgesim/{unique('p')}/cmd", unique("keeper")
    first = mqtt_backend.bus(client_id, clean_session=False)
    first.subscribe(topic, Collector(), qos=1)
    first.close()
    mqtt_backend.bus(unique("pub")).publish(topic, b"while away", qos=1)

    received = Collector()
    second = mqtt_backend.bus(client_id, clean_session=False, connect=False)
    second.subscribe(topic, received, qos=1)
    second.connect(timeout=5)

    assert received.wait_for(1)[0].payload == b"while away"


def test_a_failing_handler_does_not_stop_delivery(mqtt_backend: MqttBackend) -> None:
    topic = f"edgesim/{unique('f')}/x"
    received = Collector()

    def flaky(message: Message) -> None:
        if message.payload == b"boom":
            raise RuntimeError("handler bug")
        received(message)

    mqtt_backend.bus(unique("sub")).subscribe(topic, flaky)
    publisher = mqtt_backend.bus(unique("pub"))
    publisher.publish(topic, b"boom", qos=1)
    publisher.publish(topic, b"fine", qos=1)

    assert received.wait_for(1)[0].payload == b"fine"


def test_a_handler_may_publish_subscribe_and_cancel_itself(mqtt_backend: MqttBackend) -> None:
    base = f"edgesim/{unique('h')}"
    device, cloud = mqtt_backend.bus(unique("dev")), mqtt_backend.bus(unique("cloud"))
    answers, late = Collector(), Collector()
    cloud.subscribe(f"{base}/answer", answers)
    subscriptions = []

    def on_request(message: Message) -> None:  # the device answers from inside its handler
        device.subscribe(f"{base}/late", late)
        device.publish(f"{base}/answer", b"re:" + message.payload, qos=1)
        subscriptions[0].cancel()

    subscriptions.append(device.subscribe(f"{base}/request", on_request))
    cloud.publish(f"{base}/request", b"1", qos=1)
    assert answers.wait_for(1)[0].payload == b"re:1"
    cloud.publish(f"{base}/request", b"2", qos=1)
    cloud.publish(f"{base}/late", b"marker", qos=1)

    assert late.wait_for(1)[0].payload == b"marker"
    assert answers.payloads == [b"re:1"]


@pytest.mark.parametrize(("topic", "qos"), [("edgesim/+/x", 0), ("edgesim/#", 1), ("", 0), ("edgesim/q", 2)])
def test_invalid_publish_is_refused(mqtt_backend: MqttBackend, topic: str, qos: int) -> None:
    bus = mqtt_backend.bus(unique("pub"))
    with pytest.raises(MessageBusError):
        bus.publish(topic, b"x", qos=qos)
    assert bus.connected


def test_publish_while_disconnected_is_refused(mqtt_backend: MqttBackend) -> None:
    bus = mqtt_backend.bus(unique("pub"), connect=False)
    with pytest.raises(MessageBusError):
        bus.publish("edgesim/x", b"x", qos=1)


def test_tls_client_without_a_certificate_is_refused(
    start_mosquitto: StartMosquitto, tls_material: TlsMaterial
) -> None:
    backend = MosquittoBackend(start_mosquitto(tls=tls_material))
    bus = PahoMessageBus(backend.process.host, backend.process.port, unique("anon"), tls_material.server_only)
    try:
        with pytest.raises(MessageBusError):
            bus.connect(timeout=5)
        assert not bus.connected
    finally:
        bus.close()
    backend.bus(unique("dev"))  # a client with a certificate gets in
    backend.close()


def test_a_device_can_neither_read_nor_write_another_things_jobs_topics(mqtt_backend: MqttBackend) -> None:
    """Per-thing authorization on every broker: the simulated one refuses (NotAuthorizedError), Mosquitto's
    ACL drops silently (MQTT 3.1.1 has no refusal for a PUBLISH): either way nothing crosses."""
    from system.errors import NotAuthorizedError

    if mqtt_backend.name == "mosquitto":
        pytest.skip("a plain TCP listener knows no identities: per-thing rules need TLS client certificates")
    intruder_thing, victim_thing = unique("thing-a"), unique("thing-b")
    cloud_seen, victim_seen, stolen = Collector(), Collector(), Collector()
    cloud = mqtt_backend.bus(unique("cloud"), identity=CLOUD)
    cloud.subscribe("$aws/things/+/jobs/#", cloud_seen, qos=1)
    victim = mqtt_backend.bus(unique("victim"), identity=victim_thing)
    victim.subscribe(f"$aws/things/{victim_thing}/jobs/notify-next", victim_seen, qos=1)
    intruder = mqtt_backend.bus(unique("intruder"), identity=intruder_thing)
    denials = 0
    try:
        intruder.subscribe(f"$aws/things/{victim_thing}/jobs/#", stolen, qos=1)
    except NotAuthorizedError:
        denials += 1

    cloud.publish(f"$aws/things/{victim_thing}/jobs/notify-next", b"the victim's job", qos=1)
    victim_seen.wait_for(1)
    try:
        intruder.publish(f"$aws/things/{victim_thing}/jobs/start-next", b"forged", qos=1)
    except NotAuthorizedError:
        denials += 1
    own = f"$aws/things/{intruder_thing}/jobs/start-next"
    intruder.publish(own, b"its own request", qos=1)  # allowed; ordered after the forged one on the wire

    arrived = cloud_seen.wait_for(2)  # the cloud's own notification and the intruder's own request
    assert [m.topic for m in arrived if m.payload == b"its own request"] == [own]
    assert b"forged" not in [m.payload for m in arrived]
    assert stolen.messages == []
    assert denials == (2 if mqtt_backend.authorizes_subscriptions else 0)
