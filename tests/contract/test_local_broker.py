"""The local profile's own broker (`SimulatedCloud("local")` without a URL, `edgesim cloud up`):
a Mosquitto that takes mutual TLS only, with certificates of the cloud's CA, and keeps every thing
to its own topics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators.certificates import TlsMaterial, create_tls_material
from simulators.cloud import SimulatedCloud
from simulators.mosquitto import find_mosquitto
from system.adapters.paho_bus import PahoMessageBus
from system.adapters.tls import TlsFiles
from system.errors import MessageBusError
from tests.mqtt_fixtures import NO_MOSQUITTO, Collector

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason=NO_MOSQUITTO)


@pytest.fixture(scope="module")
def cloud() -> Iterator[SimulatedCloud]:
    with SimulatedCloud("local", project="own-broker") as started:
        yield started


@pytest.fixture
def bus(cloud: SimulatedCloud) -> Iterator[Callable[..., PahoMessageBus]]:
    made: list[PahoMessageBus] = []

    def make(client_id: str, tls: TlsFiles | None) -> PahoMessageBus:
        assert cloud.mosquitto is not None
        made.append(PahoMessageBus(cloud.mosquitto.host, cloud.mosquitto.port, client_id, tls, operation_timeout=5.0))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_it_listens_on_tls_with_a_ca_of_its_own(cloud: SimulatedCloud) -> None:
    assert cloud.mqtt_url is not None and cloud.mqtt_url.startswith("mqtts://127.0.0.1:")
    config = cloud.device_mqtt_config(cloud.project.thing_name)
    assert config["url"] == cloud.mqtt_url and "allow_plaintext" not in config
    assert all(Path(path).is_absolute() and Path(path).is_file() for path in config["tls"].values())
    assert Path(config["tls"]["key"]).stat().st_mode & 0o077 == 0  # the thing's key: owner-only


def test_plain_mqtt_is_refused(bus: Callable[..., PahoMessageBus]) -> None:
    with pytest.raises(MessageBusError):
        bus("plain", None).connect(timeout=2.0)


def test_tls_without_a_client_certificate_is_refused(cloud: SimulatedCloud, bus: Callable[..., PahoMessageBus]) -> None:
    assert isinstance(cloud.tls, TlsMaterial)
    with pytest.raises(MessageBusError):
        bus("anonymous", TlsFiles(cloud.tls.ca_cert)).connect(timeout=2.0)


def test_a_certificate_of_another_ca_is_refused(
    cloud: SimulatedCloud, bus: Callable[..., PahoMessageBus], tmp_path: Path
) -> None:
    assert isinstance(cloud.tls, TlsMaterial)
    stranger = create_tls_material(tmp_path / "other-pki").client(cloud.project.thing_name)
    with pytest.raises(MessageBusError):
        bus("impostor", TlsFiles(cloud.tls.ca_cert, stranger.cert, stranger.key)).connect(timeout=2.0)


def test_a_thing_reaches_its_own_jobs_and_nothing_of_another_things(
    cloud: SimulatedCloud, bus: Callable[..., PahoMessageBus]
) -> None:
    owner, intruder = cloud.project.thing_name, "intruder-press"
    files = {thing: TlsFiles(**cloud.device_mqtt_config(thing)["tls"]) for thing in (owner, intruder)}
    own_replies, stolen = Collector(), Collector()
    device = bus(owner, files[owner])
    device.subscribe(f"$aws/things/{owner}/jobs/get/accepted", own_replies, qos=1)
    device.connect(timeout=5.0)
    thief = bus(intruder, files[intruder])
    for topic in (f"$aws/things/{owner}/#", f"edgesim/{owner}/#", "$aws/things/+/jobs/#", "#"):
        thief.subscribe(topic, stolen, qos=1)  # Mosquitto 3.1.1 grants it, then delivers nothing the ACL forbids
    thief.connect(timeout=5.0)
    thief.publish(f"$aws/things/{owner}/jobs/get", b'{"clientToken": "forged"}', qos=1)  # dropped by the ACL
    device.publish(f"edgesim/{owner}/telemetry/logs", b"[]", qos=1)
    device.publish(f"$aws/things/{owner}/jobs/get", b'{"clientToken": "mine"}', qos=1)
    own_replies.wait_for(1)
    time.sleep(0.5)  # time for a forged request's answer, had the ACL let it through to the data plane
    assert [json.loads(m.payload)["clientToken"] for m in own_replies.messages] == ["mine"]
    assert stolen.messages == []


def test_a_restart_on_the_same_folder_makes_a_new_ca_and_certificates_that_work(tmp_path: Path) -> None:
    configs = []
    for run in range(2):
        with SimulatedCloud("local", project=f"restart-{run}", broker_folder=tmp_path / "broker") as cloud:
            config = cloud.device_mqtt_config("press-7")
            configs.append({name: Path(path).read_bytes() for name, path in config["tls"].items()})
            broker = cloud.mosquitto
            assert broker is not None
            bus = PahoMessageBus(broker.host, broker.port, "press-7", TlsFiles(**config["tls"]))
            try:
                bus.connect(timeout=5.0)  # the second run's certificate is of the second run's CA
            finally:
                bus.close()
    assert configs[0]["ca"] != configs[1]["ca"] and configs[0]["cert"] != configs[1]["cert"]
