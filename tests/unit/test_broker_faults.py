"""Fault injection on the simulated broker, and its determinism under a seed and a VirtualClock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.broker import InMemoryMessageBus, SimulatedBroker
from simulators.broker.traffic import Dropped, Event
from simulators.clock import VirtualClock
from system.errors import MessageBusError
from system.ports import Message
from tests.mqtt_fixtures import Collector, Counter


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=0.0)


@pytest.fixture
def broker(clock: VirtualClock) -> Iterator[SimulatedBroker]:
    broker = SimulatedBroker(clock=clock, seed=1)
    yield broker
    broker.close()


def connect(broker: SimulatedBroker, client_id: str, **options: object) -> InMemoryMessageBus:
    bus = InMemoryMessageBus(broker, client_id, reconnect_delay=(1.0, 4.0), **options)  # type: ignore[arg-type]
    bus.connect()
    return bus


def test_latency_delays_delivery_on_the_clock(clock: VirtualClock, broker: SimulatedBroker) -> None:
    received = Collector()
    connect(broker, "dev1").subscribe("t", received)
    broker.faults.add(client_id="dev1", latency=2.0)
    connect(broker, "cloud").publish("t", b"slow", qos=1)

    clock.advance(1.9)
    assert received.messages == []
    clock.advance(0.1)
    assert received.payloads == [b"slow"]
    assert broker.record.deliveries("dev1")[0].time == 2.0


def test_jitter_never_reorders_one_clients_messages(clock: VirtualClock, broker: SimulatedBroker) -> None:
    received = Collector()
    connect(broker, "dev1").subscribe("t", received)
    broker.faults.add(topic_filter="t", latency=0.1, jitter=1.0)
    cloud = connect(broker, "cloud")
    for number in range(50):
        cloud.publish("t", str(number).encode())
        clock.advance(0.05)
    clock.advance(5.0)
    assert [int(p) for p in received.payloads] == list(range(50))


def test_a_topic_rule_leaves_other_topics_alone(clock: VirtualClock, broker: SimulatedBroker) -> None:
    received = Collector()
    connect(broker, "dev1").subscribe("t/#", received)
    broker.faults.add(topic_filter="t/lossy", drop_rate=1.0)
    cloud = connect(broker, "cloud")
    cloud.publish("t/lossy", b"lost")
    cloud.publish("t/fine", b"kept")
    clock.advance(0)
    assert received.payloads == [b"kept"]
    assert broker.record.drops() == [Dropped(0.0, "dev1", "t/lossy", "fault")]


def test_dropped_qos1_stays_unacknowledged_and_comes_back_after_a_reconnect(
    clock: VirtualClock, broker: SimulatedBroker
) -> None:
    received = Collector()
    connect(broker, "dev1", clean_session=False).subscribe("t", received, qos=1)
    rule = broker.faults.add(client_id="dev1", drop_rate=1.0)
    cloud = connect(broker, "cloud")
    cloud.publish("t", b"qos0", qos=0)
    cloud.publish("t", b"qos1", qos=1)
    clock.advance(0)
    assert received.messages == [] and len(broker.record.drops("dev1")) == 2

    broker.faults.remove(rule)
    broker.faults.disconnect("dev1")
    clock.advance(1.0)
    assert received.payloads == [b"qos1"]
    assert broker.record.deliveries("dev1")[0].dup


def test_duplicates_send_qos1_twice_with_dup_and_never_qos0(clock: VirtualClock, broker: SimulatedBroker) -> None:
    received = Collector()
    connect(broker, "dev1").subscribe("t", received, qos=1)
    broker.faults.add(client_id="dev1", duplicate_rate=1.0)
    cloud = connect(broker, "cloud")
    cloud.publish("t", b"once", qos=0)
    cloud.publish("t", b"twice", qos=1)
    clock.advance(0)
    assert received.payloads == [b"once", b"twice", b"twice"]
    assert [d.dup for d in broker.record.deliveries("dev1")] == [False, False, True]


def test_forced_disconnect_sends_the_will_and_the_client_comes_back(
    clock: VirtualClock, broker: SimulatedBroker
) -> None:
    wills, connects, received = Collector(), Counter(), Collector()
    connect(broker, "cloud").subscribe("status/#", wills)
    device = InMemoryMessageBus(broker, "dev1", will=Message("status/dev1", b"lost"), reconnect_delay=(1.0, 4.0))
    device.add_connect_listener(connects)
    device.subscribe("cmd", received)
    device.connect()

    broker.faults.disconnect("dev1")
    assert not device.connected
    clock.advance(1.0)

    assert device.connected and connects.calls == 2
    assert wills.payloads == [b"lost"]
    connect(broker, "cloud2").publish("cmd", b"resubscribed")
    clock.advance(0)
    assert received.payloads == [b"resubscribed"]


def test_partition_refuses_reconnects_until_the_window_closes(clock: VirtualClock, broker: SimulatedBroker) -> None:
    device = connect(broker, "dev1")
    broker.faults.partition(["dev1"], duration=10.0, start_in=5.0)
    clock.advance(5.0)
    assert not device.connected
    with pytest.raises(MessageBusError, match="partition"):
        InMemoryMessageBus(broker, "dev1").connect()

    clock.advance(4.9)
    assert not device.connected  # attempts at 6, 8 and 12 s (backoff 1, 2, 4): refused until 15 s
    clock.advance(10.0)
    assert device.connected
    refused = [r for r in broker.record.refusals("dev1") if r.reason == "network partition"]
    assert len(refused) >= 3


def test_restart_drops_connections_and_clean_state_but_persistent_state_survives(
    clock: VirtualClock, broker: SimulatedBroker
) -> None:
    cloud = connect(broker, "cloud")
    cloud.publish("config", b"v1", retain=True)
    connect(broker, "keeper", clean_session=False).subscribe("t", Collector(), qos=1)
    connect(broker, "fleeting").subscribe("t", Collector())

    broker.restart(downtime=3.0)

    assert broker.connected_clients() == []
    assert broker.session("fleeting") is None
    assert broker.session("keeper") is not None and broker.retained("config") is not None
    clock.advance(2.0)
    assert broker.connected_clients() == []  # attempts at 1 and 2 s fall in the downtime
    clock.advance(4.0)
    assert broker.connected_clients() == ["cloud", "fleeting", "keeper"]
    assert broker.session("fleeting").subscriptions == {"t": 1}  # type: ignore[union-attr]


def test_restart_without_persistence_forgets_everything(clock: VirtualClock) -> None:
    broker = SimulatedBroker(clock=clock, persistence=False)
    try:
        cloud = connect(broker, "cloud")
        cloud.publish("config", b"v1", retain=True)
        connect(broker, "keeper", clean_session=False).subscribe("t", Collector(), qos=1)
        broker.restart()
        assert broker.retained("config") is None
        clock.advance(1.0)
        info = broker.session("keeper")
        assert info is not None and info.connected and info.subscriptions == {"t": 1}  # the bus re-subscribed
    finally:
        broker.close()


def run_script(seed: int) -> list[Event]:
    """A small fleet on a lossy, jittery, duplicating network, with a partition and a restart."""
    clock = VirtualClock()
    broker = SimulatedBroker(clock=clock, seed=seed)
    try:
        broker.faults.add(topic_filter="fleet/#", drop_rate=0.2, duplicate_rate=0.2, latency=0.05, jitter=0.5)
        devices = [connect(broker, f"dev{i}", clean_session=bool(i % 2)) for i in range(4)]
        for device in devices:
            device.subscribe("fleet/#", lambda m: None, qos=1)
        cloud = connect(broker, "cloud")
        for step in range(60):
            cloud.publish(f"fleet/{step % 3}", str(step).encode(), qos=step % 2)
            if step == 20:
                broker.faults.partition(["dev1", "dev2"], duration=3.0)
            if step == 40:
                broker.restart(downtime=1.0)
            clock.advance(0.25)
            if not cloud.connected:
                clock.advance(2.0)
        clock.run_until_idle(60.0)
        return list(broker.record.events)
    finally:
        broker.close()


def test_same_seed_and_script_give_the_same_traffic_record() -> None:
    first, second = run_script(seed=7), run_script(seed=7)
    assert first == second
    assert len(first) > 200
    assert run_script(seed=8) != first
