"""The broker benchmark's clients: a publisher and a subscriber of one topic, on either broker.

- `BusPair`: two `MessageBus`es, the product's clients: `InMemoryMessageBus` on a
  `SimulatedBroker`, or `PahoMessageBus` on Mosquitto (a QoS 1 publish waits for its PUBACK).
- `PahoClientPair`: two bare paho-mqtt clients on Mosquitto, paho's own network thread and
  callbacks, QoS 1 publishes pipelined (paho's default window of 20 unacknowledged): the
  fastest way Python reaches Mosquitto, and so the baseline of DESIGN.md section 5's target.

Every socket to Mosquitto gets TCP_NODELAY (and the broker `set_tcp_nodelay true`, see
simulators/mosquitto.py): otherwise Nagle plus delayed ACK adds 40 ms to a QoS 1 round trip
(feasibility.md section 5). `Flow` counts what the subscriber received and lets the publisher stay
a bounded number of messages ahead of it, so neither broker queues, and drops, an unbounded backlog.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from system.errors import MessageBusError
from system.ports import MessageBus

CONNECT_TIMEOUT = 10.0


def bench_topic() -> str:
    return f"edgesim/bench/{uuid.uuid4().hex[:12]}"


class Flow:
    """Arrivals at the subscriber: `arrived()` is its handler (one thread), the publisher waits on it."""

    def __init__(self) -> None:
        self.received = 0
        self.last = 0.0  # perf_counter() of the latest arrival
        self._target: int | None = None
        self._cond = threading.Condition()

    def arrived(self) -> None:
        self.last = time.perf_counter()
        self.received += 1  # written by the subscriber's one delivery thread only
        target = self._target
        if target is not None and self.received >= target:
            with self._cond:
                self._cond.notify_all()

    def wait_until(self, count: int, deadline: float) -> bool:
        """Block until `count` messages arrived in all, or `deadline` (perf_counter) passed."""
        if self.received >= count:
            return True
        with self._cond:
            self._target = count
            try:
                while self.received < count:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        return False
                    self._cond.wait(min(remaining, 0.1))  # the timeout also covers a missed notify
            finally:
                self._target = None
        return True


class Pair(Protocol):
    """A publisher and a subscriber of one topic; the subscriber calls `on_message()` per arrival."""

    def publish(self, payload: bytes) -> None: ...

    def close(self) -> None: ...


class BusPair:
    """Two `MessageBus`es (connected here); the subscription is made before the first publish."""

    def __init__(self, publisher: MessageBus, subscriber: MessageBus, qos: int, on_message: Callable[[], None]):
        self._publisher, self._subscriber, self._qos = publisher, subscriber, qos
        self._topic = bench_topic()
        try:
            publisher.connect(timeout=CONNECT_TIMEOUT)
            subscriber.connect(timeout=CONNECT_TIMEOUT)
            self._subscription = subscriber.subscribe(self._topic, lambda _message: on_message(), qos=qos)
        except BaseException:
            self.close()
            raise

    def publish(self, payload: bytes) -> None:
        self._publisher.publish(self._topic, payload, qos=self._qos)

    def close(self) -> None:
        self._publisher.close()
        self._subscriber.close()


def _nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PahoClientPair:
    """Two bare paho-mqtt 2.x clients (MQTT 3.1.1, clean sessions, network threads of their own)."""

    def __init__(self, host: str, port: int, qos: int, on_message: Callable[[], None]) -> None:
        self._topic, self._qos = bench_topic(), qos
        self._clients: list[mqtt.Client] = []
        try:
            self._publisher = self._connect(host, port, "pub")
            self._subscriber = self._connect(host, port, "sub")
            self._subscriber.on_message = lambda _client, _userdata, _message: on_message()
            subscribed = threading.Event()
            self._subscriber.on_subscribe = lambda *_args: subscribed.set()
            self._subscriber.subscribe(self._topic, qos)
            if not subscribed.wait(CONNECT_TIMEOUT):
                raise MessageBusError(f"no SUBACK from {host}:{port}")
        except BaseException:
            self.close()
            raise

    def _connect(self, host: str, port: int, role: str) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{role}-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
        )
        self._clients.append(client)
        connected = threading.Event()
        client.on_socket_open = _nodelay
        client.on_connect = lambda *_args: connected.set()
        client.connect(host, port)
        client.loop_start()
        if not connected.wait(CONNECT_TIMEOUT):
            raise MessageBusError(f"no CONNACK from {host}:{port}")
        return client

    def publish(self, payload: bytes) -> None:
        info = self._publisher.publish(self._topic, payload, self._qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise MessageBusError(f"paho publish failed: {mqtt.error_string(info.rc)}")

    def close(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
