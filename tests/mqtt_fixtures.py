"""MQTT test fixtures: our own Mosquitto processes (TCP, mutual TLS), simulated brokers, backends.

A conftest imports the fixtures it needs by name (see tests/contract/conftest.py). Every factory
cleans up what it made. Tests that need the `mosquitto` binary skip, saying why, when it is missing.

`mqtt_backend` is parametrized over "memory" (SimulatedBroker + InMemoryMessageBus), "mosquitto"
(PahoMessageBus over TCP), "mosquitto-tls" (PahoMessageBus, client certificates, an ACL) and
"mosquitto-tls-awscrt" (AwsIotMessageBus, the same TLS Mosquitto and ACL): one test body runs on
each. Both brokers apply the same rules: a device identity may use
`$aws/things/<identity>/...` and `edgesim/...`; the identity "cloud" may use everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.broker import InMemoryMessageBus, SimulatedBroker, ThingPolicy
from simulators.certificates import TlsMaterial, create_tls_material
from simulators.mosquitto import PRIVILEGED_IDENTITY, MosquittoProcess, find_mosquitto
from simulators.mosquitto import THING_ACL as PRODUCT_THING_ACL
from system.adapters.awsiot_bus import AwsIotMessageBus
from system.adapters.paho_bus import PahoMessageBus
from system.ports import Message, MessageBus

NO_MOSQUITTO = "the mosquitto binary is not installed (`make` installs it: apt-get install mosquitto)"
CLOUD = PRIVILEGED_IDENTITY
SHARED_PREFIX = "edgesim/"
# Mosquitto's version of ThingPolicy(shared_prefixes=("edgesim/",), privileged=("cloud",)): the
# product's per-thing ACL plus a prefix every identity shares, which the contract tests' topics use.
# Mosquitto applies it to what a client may read, never refusing a SUBSCRIBE.
THING_ACL = f"""{PRODUCT_THING_ACL}pattern readwrite {SHARED_PREFIX}#
"""
FAST_RECONNECT = (0.02, 0.5)


class Collector:
    """A handler that keeps what it receives; `wait_for(n)` blocks until n messages arrived."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()

    def __call__(self, message: Message) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Message]:
        with self._cond:
            arrived = self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
            assert arrived, f"{len(self.messages)} of {count} messages within {timeout} s: {self.messages[-3:]}"
            return list(self.messages)

    @property
    def payloads(self) -> list[bytes]:
        with self._cond:
            return [m.payload for m in self.messages]


class Counter:
    """A connect listener counting its calls; `wait_for(n)` blocks until it was called n times."""

    def __init__(self) -> None:
        self.calls = 0
        self._cond = threading.Condition()

    def __call__(self) -> None:
        with self._cond:
            self.calls += 1
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.calls >= count, timeout), f"{self.calls} of {count} calls"


class MqttBackend:
    """A broker plus a way to make connected buses on it; closes every bus it made."""

    name = "abstract"
    authorizes_subscriptions = False  # whether a SUBSCRIBE outside the policy is refused

    def __init__(self) -> None:
        self.buses: list[MessageBus] = []

    def bus(self, client_id: str, *, identity: str | None = None, connect: bool = True, **options: Any) -> MessageBus:
        bus = self._make(client_id, identity or client_id, **options)
        self.buses.append(bus)
        if connect:
            bus.connect(timeout=5.0)
        return bus

    def _make(self, client_id: str, identity: str, **options: Any) -> MessageBus:
        raise NotImplementedError

    def restart(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        for bus in self.buses:
            bus.close()


class MemoryBackend(MqttBackend):
    name = "memory"
    authorizes_subscriptions = True

    def __init__(self) -> None:
        super().__init__()
        self.broker = SimulatedBroker(policy=ThingPolicy(shared_prefixes=(SHARED_PREFIX,), privileged=(CLOUD,)))

    def _make(self, client_id: str, identity: str, **options: Any) -> MessageBus:
        return InMemoryMessageBus(self.broker, client_id, identity=identity, reconnect_delay=FAST_RECONNECT, **options)

    def restart(self) -> None:
        self.broker.restart()

    def close(self) -> None:
        super().close()
        self.broker.close()


class MosquittoBackend(MqttBackend):
    def __init__(self, process: MosquittoProcess) -> None:
        super().__init__()
        self.process = process
        self.name = "mosquitto-tls" if process.tls else "mosquitto"

    def _make(self, client_id: str, identity: str, **options: Any) -> MessageBus:
        tls = self.process.tls.client(identity) if self.process.tls else None
        return PahoMessageBus(
            self.process.host,
            self.process.port,
            client_id,
            tls,
            reconnect_delay=FAST_RECONNECT,
            operation_timeout=5.0,
            **options,
        )

    def restart(self) -> None:
        self.process.restart()


class AwsIotBackend(MosquittoBackend):
    """AwsIotMessageBus (awscrt, mutual TLS) on a TLS Mosquitto: the `aws` profile's client, locally.

    The endpoint is the broker's 127.0.0.1, which the server certificate's subjectAltName names.
    awscrt reconnects after whole seconds, so FAST_RECONNECT becomes 1 s.
    """

    name = "mosquitto-tls-awscrt"

    def __init__(self, process: MosquittoProcess) -> None:
        super().__init__(process)
        self.name = AwsIotBackend.name

    def _make(self, client_id: str, identity: str, **options: Any) -> MessageBus:
        assert self.process.tls is not None, "awscrt needs the TLS Mosquitto"
        return AwsIotMessageBus(
            self.process.host,
            self.process.port,
            client_id,
            self.process.tls.client(identity),
            reconnect_delay=FAST_RECONNECT,
            operation_timeout=5.0,
            **options,
        )


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A CA, a server certificate for localhost/127.0.0.1; `tls_material.client(name)` for clients."""
    return create_tls_material(tmp_path_factory.mktemp("pki"))


StartMosquitto = Callable[..., MosquittoProcess]


@pytest.fixture
def start_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartMosquitto]:
    """Factory: start a Mosquitto of our own on a free loopback port (TCP, or TLS given `tls=`)."""
    if find_mosquitto() is None:
        pytest.skip(NO_MOSQUITTO)
    started: list[MosquittoProcess] = []

    def factory(
        *,
        tls: TlsMaterial | None = None,
        acl: str | None = None,
        extra_config: str = "",
        client_cas: tuple[Path, ...] = (),
    ) -> MosquittoProcess:
        folder: Path = tmp_path_factory.mktemp("mosquitto")
        process = MosquittoProcess(folder, tls=tls, acl=acl, extra_config=extra_config, client_cas=client_cas)
        started.append(process)
        return process.start()

    yield factory
    for process in started:
        process.stop()


BACKENDS = ("memory", "mosquitto", "mosquitto-tls", "mosquitto-tls-awscrt")


@pytest.fixture(params=BACKENDS)
def mqtt_backend(request: pytest.FixtureRequest, tls_material: TlsMaterial) -> Iterator[MqttBackend]:
    """Each MQTT backend in turn (see the module docstring)."""
    backend: MqttBackend
    if request.param == "memory":
        backend = MemoryBackend()
    else:
        start: StartMosquitto = request.getfixturevalue("start_mosquitto")
        if request.param == "mosquitto":
            backend = MosquittoBackend(start())
        elif request.param == "mosquitto-tls":
            backend = MosquittoBackend(start(tls=tls_material, acl=THING_ACL))
        else:
            backend = AwsIotBackend(start(tls=tls_material, acl=THING_ACL))
    yield backend
    backend.close()
