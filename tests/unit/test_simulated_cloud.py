"""SimulatedCloud's configuration checks and broker URLs (nothing is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.cloud import BrokerAddress, SimulatedCloud
from system.adapters.tls import TlsFiles
from system.config import Settings
from system.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", BrokerAddress("127.0.0.1", 1883, False)),
        ("mqtt://broker.local", BrokerAddress("broker.local", 1883, False)),
        ("mqtts://localhost:8884", BrokerAddress("localhost", 8884, True)),
        ("mqtts://localhost", BrokerAddress("localhost", 8883, True)),
    ],
)
def test_broker_urls_name_host_port_and_tls(url: str, expected: BrokerAddress) -> None:
    assert BrokerAddress.parse(url) == expected


@pytest.mark.parametrize("url", ["http://127.0.0.1:1883", "mqtt://", "mqtt://host:99999", "mqtt://host:1883/topic"])
def test_a_malformed_broker_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        BrokerAddress.parse(url)


def test_profiles_and_broker_options_must_agree() -> None:
    with pytest.raises(ConfigError):
        SimulatedCloud("aws")
    with pytest.raises(ConfigError):
        SimulatedCloud("fake", mqtt_url="mqtt://127.0.0.1:1883")  # the fake broker has no listener
    with pytest.raises(ConfigError):
        SimulatedCloud("local", mqtt_url="mqtts://127.0.0.1:8883")  # TLS without files
    with pytest.raises(ConfigError):
        SimulatedCloud("local", mqtt_url="mqtt://127.0.0.1:1883", tls=TlsFiles(Path("ca.pem")))  # plain + files
    with pytest.raises(ConfigError, match="own PKI"):
        SimulatedCloud("local", tls=TlsFiles(Path("ca.pem")))  # the cloud's own broker has its own CA
    with pytest.raises(ConfigError, match="broker_folder"):
        SimulatedCloud("local", mqtt_url="mqtt://127.0.0.1:1883", broker_folder=Path("b"))
    with pytest.raises(ConfigError, match="broker_folder"):
        SimulatedCloud("fake", broker_folder=Path("b"))
    own = SimulatedCloud("local")
    assert own.owns_broker and own.mqtt_url is None  # a TLS Mosquitto of its own, on a port picked at start
    given = SimulatedCloud("local", mqtt_url="mqtt://127.0.0.1:1883")
    assert not given.owns_broker and given.mqtt_url == "mqtt://127.0.0.1:1883"


def test_from_settings_takes_the_profile_and_the_mqtt_override() -> None:
    local = SimulatedCloud.from_settings(Settings(profile="local"))
    assert (local.profile, local.mqtt) == ("local", "local")
    mixed = SimulatedCloud.from_settings(Settings(profile="fake", backends={"mqtt": "local"}))
    assert (mixed.profile, mixed.mqtt) == ("fake", "local")
    assert mixed.owns_broker and not SimulatedCloud.from_settings(Settings(profile="fake")).owns_broker
    with pytest.raises(ConfigError, match="aws"):
        SimulatedCloud.from_settings(Settings(profile="aws"))
    with pytest.raises(ConfigError, match="aws"):
        SimulatedCloud.from_settings(Settings(profile="fake", backends={"mqtt": "aws"}))
    with pytest.raises(ConfigError, match="must agree"):
        SimulatedCloud.from_settings(Settings(profile="fake", backends={"registry": "local"}))
