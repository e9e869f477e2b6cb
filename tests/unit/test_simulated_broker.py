"""SimulatedBroker: sessions, retained messages, wills, limits, authorization, server-side delivery.

Most tests run on a VirtualClock, where nothing is delivered until the test advances it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulators.broker import InMemoryMessageBus, ServiceRequest, SimulatedBroker, ThingPolicy
from simulators.broker.traffic import Delivered, Denied, Disconnected, Dropped, Published, Refused
from simulators.clock import VirtualClock
from system.errors import MessageBusError, NotAuthorizedError
from system.ports import Message
from tests.mqtt_fixtures import Collector

MakeBus = Callable[..., InMemoryMessageBus]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=1000.0)


@pytest.fixture
def broker(clock: VirtualClock) -> Iterator[SimulatedBroker]:
    broker = SimulatedBroker(clock=clock, policy=ThingPolicy(shared_prefixes=("fleet/",), privileged=("cloud",)))
    yield broker
    broker.close()


@pytest.fixture
def make_bus(broker: SimulatedBroker) -> MakeBus:
    """Factory: a connected InMemoryMessageBus on `broker` (pass connect=False to skip connecting)."""

    def make(client_id: str, connect: bool = True, **options: Any) -> InMemoryMessageBus:
        options.setdefault("reconnect_delay", (1.0, 8.0))
        bus = InMemoryMessageBus(broker, client_id, **options)
        if connect:
            bus.connect()
        return bus

    return make


def test_nothing_is_delivered_until_the_clock_moves(clock: VirtualClock, make_bus: MakeBus) -> None:
    received = Collector()
    make_bus("dev1").subscribe("$aws/things/dev1/#", received)
    make_bus("cloud").publish("$aws/things/dev1/x", b"1", qos=1)
    assert received.messages == []
    clock.advance(0)
    assert received.payloads == [b"1"]


def test_retained_message_is_kept_per_topic_and_an_empty_one_deletes_it(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    cloud = make_bus("cloud")
    cloud.publish("fleet/config", b"v1", qos=1, retain=True)
    cloud.publish("fleet/config", b"v2", qos=0, retain=True)
    first = Collector()
    make_bus("dev1").subscribe("fleet/#", first, qos=1)
    clock.advance(0)
    assert first.messages == [Message("fleet/config", b"v2", 0, True)]

    cloud.publish("fleet/config", b"", qos=1, retain=True)
    assert broker.retained("fleet/config") is None
    second = Collector()
    make_bus("dev2").subscribe("fleet/#", second)
    clock.advance(0)
    assert second.messages == []
    assert first.messages[-1] == Message("fleet/config", b"", 1, False)  # still forwarded live


def test_will_is_published_when_a_client_dies_but_not_when_it_disconnects(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    wills = Collector()
    make_bus("cloud").subscribe("fleet/status/#", wills)
    will = Message("fleet/status/dev1", b"offline", 1, True)
    make_bus("dev1", will=will).close()
    make_bus("dev2", will=Message("fleet/status/dev2", b"offline", 1, True)).kill()
    clock.advance(0)

    assert [m.topic for m in wills.messages] == ["fleet/status/dev2"]
    assert broker.retained("fleet/status/dev2") == Message("fleet/status/dev2", b"offline", 1, True)
    assert Disconnected(1000.0, "dev2", "killed", True) in broker.record.events


def test_a_will_the_policy_forbids_refuses_the_connection(broker: SimulatedBroker, make_bus: MakeBus) -> None:
    bus = make_bus("dev1", connect=False, will=Message("$aws/things/dev2/status", b"x"))
    with pytest.raises(NotAuthorizedError):
        bus.connect()
    assert broker.record.denials() == [Denied(1000.0, "dev1", "dev1", "will", "$aws/things/dev2/status")]


def test_clean_session_ends_with_its_connection(broker: SimulatedBroker, make_bus: MakeBus) -> None:
    bus = make_bus("dev1")
    bus.subscribe("fleet/#", Collector())
    assert broker.session("dev1") is not None
    bus.close()
    assert broker.session("dev1") is None


def test_persistent_session_keeps_subscriptions_and_queues_qos1_only(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    device = make_bus("dev1", clean_session=False)
    device.subscribe("fleet/#", Collector(), qos=1)
    device.close()
    info = broker.session("dev1")
    assert info is not None and not info.connected and info.subscriptions == {"fleet/#": 1}

    cloud = make_bus("cloud")
    cloud.publish("fleet/a", b"q0", qos=0)
    cloud.publish("fleet/b", b"q1", qos=1)
    assert broker.session("dev1").queued == 1  # type: ignore[union-attr]
    assert Dropped(1000.0, "dev1", "fleet/a", "offline") in broker.record.events

    received = Collector()
    back = make_bus("dev1", connect=False, clean_session=False)
    back.subscribe("fleet/#", received, qos=1)  # before connect: the queued message finds it
    back.connect()
    clock.advance(0)
    assert received.messages == [Message("fleet/b", b"q1", 1, False)]
    assert broker.record.connections("dev1")[-1].session_present  # type: ignore[union-attr]


def test_unacknowledged_qos1_is_resent_with_dup_after_a_reconnect(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    received = Collector()
    device = make_bus("dev1", clean_session=False)
    device.subscribe("fleet/#", received, qos=1)
    make_bus("cloud").publish("fleet/job", b"do it", qos=1)
    broker.faults.disconnect("dev1")  # before the clock delivered it: no PUBACK yet
    assert broker.session("dev1").inflight == 1  # type: ignore[union-attr]

    clock.advance(1.0)  # the bus reconnects after its first backoff step

    assert received.payloads == [b"do it"]
    delivered = broker.record.deliveries("dev1")
    assert [(d.payload, d.dup) for d in delivered] == [(b"do it", True)]
    assert broker.session("dev1").inflight == 0  # type: ignore[union-attr]


def test_queue_of_an_absent_persistent_session_is_bounded(clock: VirtualClock, make_bus: MakeBus) -> None:
    broker = SimulatedBroker(clock=clock, max_queued_messages=2)
    try:
        device = InMemoryMessageBus(broker, "dev1", clean_session=False)
        device.connect()
        device.subscribe("t", Collector(), qos=1)
        device.close()
        cloud = InMemoryMessageBus(broker, "cloud")
        cloud.connect()
        for number in range(3):
            cloud.publish("t", str(number).encode(), qos=1)
        assert broker.session("dev1").queued == 2  # type: ignore[union-attr]
        assert broker.record.drops("dev1") == [Dropped(1000.0, "dev1", "t", "queue full")]
    finally:
        broker.close()


def test_each_client_gets_messages_in_the_order_they_were_published(clock: VirtualClock, make_bus: MakeBus) -> None:
    received = Collector()
    make_bus("cloud-sub", identity="cloud").subscribe("fleet/#", received, qos=1)
    publishers = [make_bus(f"dev{i}") for i in range(3)]
    expected = []
    for number in range(30):
        payload = f"{number}".encode()
        publishers[number % 3].publish(f"fleet/dev{number % 3}", payload, qos=number % 2)
        expected.append(payload)
    clock.advance(0)
    assert received.payloads == expected


def test_oversized_publish_is_refused_and_the_broker_carries_on(clock: VirtualClock, make_bus: MakeBus) -> None:
    broker = SimulatedBroker(clock=clock, max_message_bytes=1024)
    try:
        bus, received = InMemoryMessageBus(broker, "dev1"), Collector()
        bus.connect()
        bus.subscribe("t", received)
        with pytest.raises(MessageBusError, match="over the 1024-byte limit"):
            bus.publish("t", b"x" * 1025, qos=1)
        bus.publish("t", b"x" * 1024, qos=1)
        clock.advance(0)
        assert bus.connected and [len(p) for p in received.payloads] == [1024]
        assert [r.action for r in broker.record.refusals()] == ["publish"]
    finally:
        broker.close()


def test_qos2_publish_is_refused_and_a_qos2_subscription_is_granted_qos1(
    broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    bus = make_bus("cloud")
    with pytest.raises(MessageBusError, match="QoS 2"):
        bus.publish("fleet/x", b"x", qos=2)
    bus.subscribe("fleet/#", Collector(), qos=2)
    assert broker.session("cloud").subscriptions == {"fleet/#": 1}  # type: ignore[union-attr]


def test_a_device_stays_in_its_own_thing_topics_and_the_shared_prefixes(
    broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    device = make_bus("dev1")
    device.publish("$aws/things/dev1/jobs/start-next", b"{}")
    device.publish("fleet/telemetry", b"{}")
    device.subscribe("$aws/things/dev1/jobs/#", Collector())
    for topic in ("$aws/things/dev2/jobs/start-next", "other/x"):
        with pytest.raises(NotAuthorizedError):
            device.publish(topic, b"{}")
    for topic_filter in ("$aws/things/+/jobs/#", "#", "$aws/things/dev10/#"):
        with pytest.raises(NotAuthorizedError):
            device.subscribe(topic_filter, Collector())

    assert [(d.action, d.topic) for d in broker.record.denials("dev1")] == [
        ("publish", "$aws/things/dev2/jobs/start-next"),
        ("publish", "other/x"),
        ("subscribe", "$aws/things/+/jobs/#"),
        ("subscribe", "#"),
        ("subscribe", "$aws/things/dev10/#"),
    ]
    assert device.connected
    make_bus("jobs-service", identity="cloud").subscribe("#", Collector())  # privileged


def test_a_thing_name_with_wildcards_owns_nothing() -> None:
    policy = ThingPolicy()
    assert not policy.allows("+", "subscribe", "$aws/things/+/jobs/#")
    assert policy.allows("dev-1:a_b", "publish", "$aws/things/dev-1:a_b/x")


def test_deliver_to_reaches_one_session_once_even_if_it_subscribed(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    own, other = Collector(), Collector()
    reply = "$aws/things/dev1/jobs/start-next/accepted"
    make_bus("dev1").subscribe("$aws/things/dev1/jobs/#", own)
    make_bus("watcher", identity="cloud").subscribe("$aws/things/+/jobs/#", other)

    assert broker.deliver_to("dev1", reply, b'{"clientToken":"t"}', qos=1)
    assert not broker.deliver_to("nobody", reply, b"{}")
    clock.advance(0)

    assert own.messages == [Message(reply, b'{"clientToken":"t"}', 1, False)]
    assert other.messages == []
    assert Published(1000.0, "$broker", reply, b'{"clientToken":"t"}', 1, False, to="dev1") in broker.record.events


def test_a_service_sees_who_published_and_replies_to_that_client_only(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    def answer(request: ServiceRequest) -> None:
        broker.deliver_to(request.client_id, request.topic + "/accepted", request.payload, qos=1)

    service = broker.attach_service("$aws/things/+/jobs/+", answer, name="jobs")
    replies_1, replies_2 = Collector(), Collector()
    dev1, dev2 = make_bus("dev1"), make_bus("dev2")
    dev1.subscribe("$aws/things/dev1/jobs/+/accepted", replies_1)
    dev2.subscribe("$aws/things/dev2/jobs/+/accepted", replies_2)

    dev1.publish("$aws/things/dev1/jobs/get", b"1", qos=1)
    clock.advance(0)
    service.cancel()
    dev1.publish("$aws/things/dev1/jobs/get", b"2", qos=1)
    clock.advance(0)

    assert replies_1.messages == [Message("$aws/things/dev1/jobs/get/accepted", b"1", 1, False)]
    assert replies_2.messages == []


def test_a_second_connection_with_the_same_client_id_takes_over(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    first = make_bus("dev1", will=Message("fleet/status/dev1", b"gone"))
    second = InMemoryMessageBus(broker, "dev1", reconnect_delay=(1.0, 8.0))
    second.connect()
    assert not first.connected and second.connected
    assert broker.record.published("dev1")[-1].topic == "fleet/status/dev1"
    first.close()
    second.close()


def test_published_delivered_and_denied_events_are_recorded(
    clock: VirtualClock, broker: SimulatedBroker, make_bus: MakeBus
) -> None:
    make_bus("dev1").subscribe("$aws/things/dev1/in", Collector())
    make_bus("cloud").publish("$aws/things/dev1/in", b"x", qos=1)
    clock.advance(0.5)
    assert broker.record.published("cloud") == [Published(1000.0, "cloud", "$aws/things/dev1/in", b"x", 1, False)]
    assert broker.record.deliveries() == [Delivered(1000.0, "dev1", "$aws/things/dev1/in", b"x", 1, False, False)]
    with pytest.raises(MessageBusError):
        make_bus("dev2").publish("a/+", b"x")
    assert isinstance(broker.record.refusals("dev2")[0], Refused)


def test_on_the_wall_clock_one_client_never_runs_two_handlers_at_once() -> None:
    broker = SimulatedBroker(workers=4)
    try:
        subscriber, done = InMemoryMessageBus(broker, "sub"), threading.Event()
        subscriber.connect()
        state = {"active": 0, "most": 0, "count": 0, "threads": set()}
        lock = threading.Lock()

        def handler(message: Message) -> None:
            with lock:
                state["active"] += 1
                state["most"] = max(state["most"], state["active"])
                state["threads"].add(threading.current_thread().name)
            sum(range(200))  # a little work, to give overlaps a chance
            with lock:
                state["active"] -= 1
                state["count"] += 1
                if state["count"] == 2000:
                    done.set()

        subscriber.subscribe("t/#", handler, qos=1)
        publishers = [InMemoryMessageBus(broker, f"pub{i}") for i in range(4)]
        threads = []
        for index, publisher in enumerate(publishers):
            publisher.connect()
            threads.append(
                threading.Thread(target=lambda p=publisher, i=index: [p.publish(f"t/{i}", b"x") for _ in range(500)])
            )
        for thread in threads:
            thread.start()
        assert done.wait(10)
        assert state["most"] == 1
        assert threading.current_thread().name not in state["threads"]
    finally:
        broker.close()


def test_qos1_beyond_the_in_flight_window_waits_in_order_and_a_full_queue_drops(clock: VirtualClock) -> None:
    broker = SimulatedBroker(clock=clock, max_inflight=2, max_queued_messages=5)
    try:
        device, cloud, received = InMemoryMessageBus(broker, "dev1"), InMemoryMessageBus(broker, "cloud"), Collector()
        device.connect()
        cloud.connect()
        device.subscribe("t", received, qos=1)
        for number, qos in enumerate([1, 1, 1, 1, 1, 1, 0, 1]):
            cloud.publish("t", str(number).encode(), qos=qos)
        info = broker.session("dev1")
        assert info is not None and (info.inflight, info.queued) == (2, 5)  # QoS 0 "6" queued too: order
        assert broker.record.drops("dev1") == [Dropped(1000.0, "dev1", "t", "queue full")]  # "7"

        clock.advance(0)
        assert received.payloads == [str(number).encode() for number in range(7)]
        assert broker.session("dev1").inflight == 0  # type: ignore[union-attr]
    finally:
        broker.close()


def test_what_a_clean_session_held_when_it_ends_is_recorded_as_dropped(clock: VirtualClock) -> None:
    # Accepted QoS 1 messages must be delivered or recorded as dropped: the session's end lost two
    # in flight and three queued without a trace before.
    broker = SimulatedBroker(clock=clock, max_inflight=2, max_queued_messages=3)
    try:
        subscriber, publisher = InMemoryMessageBus(broker, "dev1"), InMemoryMessageBus(broker, "cloud")
        subscriber.connect()
        publisher.connect()
        subscriber.subscribe("t", Collector(), qos=1)
        for number in range(6):
            publisher.publish("t", str(number).encode(), qos=1)
        subscriber.close()  # before the clock delivered anything: no PUBACK came back
        clock.advance(1.0)

        reasons = [drop.reason for drop in broker.record.drops("dev1")]
        assert reasons == ["queue full"] + ["clean session"] * 5
        assert broker.record.deliveries("dev1") == []
    finally:
        broker.close()


@pytest.mark.parametrize("ending", ["clean connect", "restart without persistence"])
def test_what_a_discarded_persistent_session_queued_is_recorded_as_dropped(clock: VirtualClock, ending: str) -> None:
    broker = SimulatedBroker(clock=clock, persistence=False)
    try:
        device = InMemoryMessageBus(broker, "dev1", clean_session=False)
        device.connect()
        device.subscribe("t", Collector(), qos=1)
        device.close()
        cloud = InMemoryMessageBus(broker, "cloud")
        cloud.connect()
        cloud.publish("t", b"kept for dev1", qos=1)
        assert broker.session("dev1").queued == 1  # type: ignore[union-attr]

        if ending == "clean connect":
            InMemoryMessageBus(broker, "dev1").connect()  # CleanSession = 1 discards the old session
        else:
            broker.restart()

        reason = "clean session" if ending == "clean connect" else "broker restart"
        assert broker.record.drops("dev1") == [Dropped(1000.0, "dev1", "t", reason)]
    finally:
        broker.close()
