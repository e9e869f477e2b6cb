"""AwsIotMessageBus specifics on a stubbed awscrt connection: error translation, resubscription, the `$aws` guard.

The stub answers with futures the test controls, the way awscrt does: a refusal by the native call
is a future already failed with RuntimeError, a broker's answer completes it later (here at once).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt
from awscrt.exceptions import AwsCrtError

from simulators.certificates import TlsMaterial
from system.adapters.awsiot_bus import AwsIotMessageBus
from system.adapters.tls import TlsFiles
from system.errors import ConfigError, MessageBusError, NotAuthorizedError
from system.ports import Message
from tests.mqtt_fixtures import Collector, Counter, tls_material

__all__ = ["tls_material"]  # fixture used below

INVALID_TOPIC = RuntimeError("5128 (AWS_ERROR_MQTT_INVALID_TOPIC): Topic or filter is invalid.")
HANGUP = AwsCrtError(5134, "AWS_ERROR_MQTT_UNEXPECTED_HANGUP", "The connection was closed unexpectedly.")


def future(result: Any = None, error: BaseException | None = None) -> Future[Any]:
    """A completed future, or with neither given, one that never completes (no answer)."""
    made: Future[Any] = Future()
    if error is not None:
        made.set_exception(error)
    elif result is not None:
        made.set_result(result)
    return made


class StubConnection:
    """Stands for an awscrt `mqtt.Connection`; records what it was asked, answers as configured."""

    def __init__(self) -> None:
        self.connack = future({"session_present": False})
        self.suback: Any = lambda topic: future({"packet_id": 1, "topic": topic, "qos": mqtt.QoS.AT_LEAST_ONCE})
        self.puback = future({"packet_id": 2})
        self.disconnected = future({})
        self.subscribed: list[str] = []
        self.published: list[tuple[str, mqtt.QoS]] = []
        self.unsubscribed: list[str] = []
        self.disconnects = 0

    def connect(self) -> Future[Any]:
        return self.connack

    def subscribe(self, topic: str, qos: mqtt.QoS, callback: Any = None) -> tuple[Future[Any], int]:
        assert callback is None, "messages must come through on_message only"
        self.subscribed.append(topic)
        return self.suback(topic), 1

    def publish(self, topic: str, payload: bytes, qos: mqtt.QoS, retain: bool = False) -> tuple[Future[Any], int]:
        self.published.append((topic, qos))
        return self.puback, 2

    def unsubscribe(self, topic: str) -> tuple[Future[Any], int]:
        self.unsubscribed.append(topic)
        return future({"packet_id": 3}), 3

    def disconnect(self) -> Future[Any]:
        self.disconnects += 1
        return self.disconnected


@pytest.fixture
def make_bus(tls_material: TlsMaterial) -> Any:
    """Factory: a bus whose awscrt connection is a StubConnection; closed after the test."""
    made: list[AwsIotMessageBus] = []

    def factory(stub: StubConnection | None = None, *, connect: bool = True) -> tuple[AwsIotMessageBus, StubConnection]:
        bus = AwsIotMessageBus("127.0.0.1", 1, "stubbed", tls_material.client("dev1"), operation_timeout=0.2)
        bus._connection = stub = stub or StubConnection()
        made.append(bus)
        if connect:
            bus.connect(timeout=1)
        return bus, stub

    yield factory
    for bus in made:
        bus.close()


def test_a_bus_without_a_client_certificate_is_a_config_error(tls_material: TlsMaterial) -> None:
    with pytest.raises(ConfigError, match="mutual TLS"):
        AwsIotMessageBus("127.0.0.1", 8883, "anon", tls_material.server_only)


def test_unusable_tls_files_are_a_message_bus_error(tmp_path: Path) -> None:
    missing = TlsFiles(tmp_path / "ca.crt", tmp_path / "dev.crt", tmp_path / "dev.key")
    with pytest.raises(MessageBusError, match="cannot set up the connection"):
        AwsIotMessageBus("127.0.0.1", 8883, "dev", missing)


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (mqtt.ConnectReturnCode.NOT_AUTHORIZED, NotAuthorizedError),
        (mqtt.ConnectReturnCode.BAD_USERNAME_OR_PASSWORD, NotAuthorizedError),
        (mqtt.ConnectReturnCode.IDENTIFIER_REJECTED, MessageBusError),
    ],
)
def test_a_refused_connect_is_translated(make_bus: Any, code: mqtt.ConnectReturnCode, error_type: type) -> None:
    stub = StubConnection()
    stub.connack = future(error=Exception(code))  # what awscrt's connect() future holds for a return code
    bus, _ = make_bus(stub, connect=False)
    with pytest.raises(error_type, match=code.name) as raised:
        bus.connect(timeout=1)
    assert type(raised.value) is error_type and not bus.connected


def test_a_socket_or_tls_failure_on_connect_is_a_message_bus_error(make_bus: Any) -> None:
    stub = StubConnection()
    stub.connack = future(error=AwsCrtError(1047, "AWS_IO_SOCKET_CONNECTION_REFUSED", "socket connection refused."))
    bus, _ = make_bus(stub, connect=False)
    with pytest.raises(MessageBusError, match="CONNECTION_REFUSED") as raised:
        bus.connect(timeout=1)
    assert isinstance(raised.value.__cause__, AwsCrtError)


def test_no_connack_is_a_message_bus_error_and_the_attempt_is_stopped(make_bus: Any) -> None:
    stub = StubConnection()
    stub.connack = future()
    bus, _ = make_bus(stub, connect=False)
    with pytest.raises(MessageBusError, match="no CONNACK"):
        bus.connect(timeout=0.1)
    stub.connack.set_result({"session_present": False})  # too late: the attempt was abandoned
    assert stub.disconnects == 1 and not bus.connected


def test_a_qos1_publish_waits_for_its_puback(make_bus: Any) -> None:
    bus, stub = make_bus()
    bus.publish("edgesim/a", b"x", qos=1)
    stub.puback = future()
    with pytest.raises(MessageBusError, match="no PUBACK"):
        bus.publish("edgesim/a", b"x", qos=1)
    assert stub.published == [("edgesim/a", mqtt.QoS.AT_LEAST_ONCE)] * 2


def test_an_awscrt_failure_of_a_publish_is_a_message_bus_error(make_bus: Any) -> None:
    bus, stub = make_bus()
    stub.puback = future(error=HANGUP)
    with pytest.raises(MessageBusError, match="UNEXPECTED_HANGUP") as raised:
        bus.publish("edgesim/a", b"x", qos=1)
    assert isinstance(raised.value.__cause__, AwsCrtError)


@pytest.mark.parametrize("qos", [0, 1])
def test_a_topic_the_native_call_refuses_is_a_message_bus_error(make_bus: Any, qos: int) -> None:
    bus, stub = make_bus()
    stub.puback = future(error=INVALID_TOPIC)
    with pytest.raises(MessageBusError, match="INVALID_TOPIC"):
        bus.publish("edgesim/+/x", b"x", qos=qos)
    assert bus.connected


def test_qos2_and_publishing_while_disconnected_are_refused_before_awscrt(make_bus: Any) -> None:
    bus, stub = make_bus()
    with pytest.raises(MessageBusError, match="QoS 2"):
        bus.publish("edgesim/a", b"x", qos=2)
    offline, offline_stub = make_bus(connect=False)
    with pytest.raises(MessageBusError, match="not connected"):
        offline.publish("edgesim/a", b"x", qos=1)
    assert stub.published == [] and offline_stub.published == []


@pytest.mark.parametrize(
    "refusal",
    [
        lambda topic: future(error=mqtt.SubscribeError(topic)),  # awscrt 0.36 for a SUBACK of 0x80
        lambda topic: future({"packet_id": 1, "topic": topic, "qos": None}),
        lambda topic: future({"packet_id": 1, "topic": topic, "qos": 0x80}),
    ],
    ids=["SubscribeError", "qos-None", "qos-0x80"],
)
def test_a_refused_subscription_raises_not_authorized_and_registers_nothing(make_bus: Any, refusal: Any) -> None:
    bus, stub = make_bus()
    stub.suback = refusal
    with pytest.raises(NotAuthorizedError, match="refused"):
        bus.subscribe("$aws/things/other/#", Collector())
    assert bus.handlers.filters() == {}


@pytest.mark.parametrize(
    ("suback", "message"),
    [(future(), "no SUBACK"), (future(error=INVALID_TOPIC), "INVALID_TOPIC"), (future(error=HANGUP), "HANGUP")],
)
def test_a_failed_subscription_is_a_message_bus_error(make_bus: Any, suback: Future[Any], message: str) -> None:
    bus, stub = make_bus()
    stub.suback = lambda topic: suback
    with pytest.raises(MessageBusError, match=message) as raised:
        bus.subscribe("a/#/b", Collector())
    assert not isinstance(raised.value, NotAuthorizedError) and bus.handlers.filters() == {}


def test_a_failed_disconnect_on_close_is_logged_not_raised(make_bus: Any, caplog: pytest.LogCaptureFixture) -> None:
    bus, stub = make_bus()
    stub.disconnected = future(error=HANGUP)
    bus.close()
    assert "DISCONNECT failed" in caplog.text and not bus.connected


def test_a_cancelled_disconnect_on_close_is_logged_not_raised(make_bus: Any, caplog: pytest.LogCaptureFixture) -> None:
    bus, stub = make_bus()
    stub.disconnected = Future()
    stub.disconnected.cancel()  # awscrt tearing the connection down under the DISCONNECT
    bus.close()
    assert "DISCONNECT failed" in caplog.text and not bus.connected


def test_aws_topics_reach_only_handlers_whose_filter_matches_by_the_mqtt_rules(make_bus: Any) -> None:
    """awscrt's own dispatch gives `$aws/...` to a `#` callback too; MQTT-3.1.1 4.7.2 says it must not."""
    bus, stub = make_bus()
    everything, jobs, cancelled = Collector(), Collector(), Collector()
    dispatch_threads: list[threading.Thread] = []

    def on_job(message: Message) -> None:
        dispatch_threads.append(threading.current_thread())
        jobs(message)

    bus.subscribe("#", everything)
    bus.subscribe("$aws/things/+/jobs/#", on_job)
    bus.subscribe("edgesim/other", cancelled).cancel()  # its messages may still be in flight

    # What awscrt's connection-wide on_message receives, once per PUBLISH, on its event-loop thread.
    for topic in ("$aws/things/dev1/jobs/notify-next", "edgesim/other", "edgesim/marker"):
        bus._on_message(topic=topic, payload=b"x", dup=False, qos=mqtt.QoS.AT_LEAST_ONCE, retain=False)

    assert everything.wait_for(2) == [Message("edgesim/other", b"x", 1), Message("edgesim/marker", b"x", 1)]
    assert [m.topic for m in jobs.messages] == ["$aws/things/dev1/jobs/notify-next"] and cancelled.messages == []
    assert len(dispatch_threads) == 1 and dispatch_threads[0] is not threading.current_thread()
    assert dispatch_threads[0].name == "stubbed-dispatch"  # the bus's dispatcher, not awscrt's thread
    assert stub.subscribed == ["#", "$aws/things/+/jobs/#", "edgesim/other"]
    assert stub.unsubscribed == ["edgesim/other"]


@pytest.mark.parametrize(
    ("session_present", "resent"), [(False, ["a/#", "$aws/things/dev1/#", "late/x"]), (True, ["late/x"])]
)
def test_a_resumed_connection_resubscribes_what_the_broker_lacks_then_calls_listeners(
    make_bus: Any, session_present: bool, resent: list[str]
) -> None:
    bus, stub = make_bus()
    connects = Counter()
    bus.add_connect_listener(connects)
    bus.subscribe("a/#", Collector())
    bus.subscribe("$aws/things/dev1/#", Collector())
    bus._on_interrupted(connection=stub, error=HANGUP)
    assert not bus.connected
    bus.subscribe("late/x", Collector())  # while disconnected: sent at the next connect
    stub.subscribed.clear()
    held_back: list[Future[Any]] = []

    def suback_later(topic: str) -> Future[Any]:
        held_back.append(future())
        return held_back[-1]

    stub.suback = suback_later

    bus._on_resumed(connection=stub, return_code=mqtt.ConnectReturnCode.ACCEPTED, session_present=session_present)

    assert stub.subscribed == resent  # one SUBSCRIBE per filter (IoT Core takes at most 8 per packet)
    assert bus.connected and connects.calls == 0  # listeners wait until the subscriptions are in place
    for ack in held_back:
        ack.set_result({"packet_id": 1, "topic": "t", "qos": mqtt.QoS.AT_LEAST_ONCE})
    connects.wait_for(1, timeout=2)
