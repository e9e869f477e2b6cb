"""PahoMessageBus specifics: SUBACK/PUBACK handling on a stubbed paho client, TCP_NODELAY on a real one."""

from __future__ import annotations

import socket
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from simulators.certificates import TlsMaterial
from system.adapters.paho_bus import PahoMessageBus
from system.errors import MessageBusError, NotAuthorizedError
from tests.mqtt_fixtures import Collector, StartMosquitto, start_mosquitto, tls_material

__all__ = ["start_mosquitto", "tls_material"]  # fixtures used below


class StubPaho:
    """Stands for a connected paho client whose broker answers SUBSCRIBE with `granted`."""

    def __init__(self, bus: PahoMessageBus, granted: int | None) -> None:
        self.bus, self.granted = bus, granted

    def is_connected(self) -> bool:
        return True

    def subscribe(self, topic: str, qos: int) -> tuple[mqtt.MQTTErrorCode, int]:
        if self.granted is not None:  # the SUBACK arrives before subscribe() has even returned
            self.bus._on_subscribe(self, None, 7, [ReasonCode(PacketTypes.SUBACK, identifier=self.granted)], None)  # type: ignore[arg-type]
        return mqtt.MQTT_ERR_SUCCESS, 7

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        return mqtt.MQTTMessageInfo(8)  # never acknowledged

    def unsubscribe(self, topic: str) -> tuple[mqtt.MQTTErrorCode, int]:
        return mqtt.MQTT_ERR_SUCCESS, 9


def stubbed(granted: int | None) -> PahoMessageBus:
    bus = PahoMessageBus("127.0.0.1", 1, "stubbed", operation_timeout=0.2)
    bus._client = StubPaho(bus, granted)  # type: ignore[assignment]
    return bus


def test_a_refused_subscription_raises_not_authorized_and_registers_nothing() -> None:
    bus = stubbed(granted=0x80)
    with pytest.raises(NotAuthorizedError):
        bus.subscribe("$aws/things/other/#", Collector())
    assert bus.handlers.filters() == {}


def test_a_granted_subscription_is_kept() -> None:
    bus = stubbed(granted=1)
    bus.subscribe("$aws/things/dev1/#", Collector())
    assert bus.handlers.filters() == {"$aws/things/dev1/#": 1}


def test_a_missing_suback_is_a_message_bus_error() -> None:
    with pytest.raises(MessageBusError, match="no SUBACK"):
        stubbed(granted=None).subscribe("a/b", Collector())


def test_a_missing_puback_is_a_message_bus_error() -> None:
    with pytest.raises(MessageBusError, match="no PUBACK"):
        stubbed(granted=1).publish("a/b", b"x", qos=1)


@pytest.mark.parametrize("use_tls", [False, True])
def test_every_connection_has_tcp_nodelay(
    start_mosquitto: StartMosquitto, tls_material: TlsMaterial, use_tls: bool
) -> None:
    mosquitto = start_mosquitto(tls=tls_material if use_tls else None)
    bus = PahoMessageBus(
        mosquitto.host,
        mosquitto.port,
        "nodelay",
        tls_material.client("dev1") if use_tls else None,
        reconnect_delay=(0.02, 0.2),
    )
    try:
        bus.connect(timeout=5)
        sock: Any = bus._client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        bus.close()
