"""A device's MQTT transport: mutual TLS on local and aws; plain MQTT only where the config allows it."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from system.edge.backends import check_transport
from system.edge.device_config import parse_device_config
from system.errors import ConfigError

TLS = {"ca": "ca.pem", "cert": "press-7.pem", "key": "press-7.key"}


def config(**mqtt: Any) -> Any:
    return parse_device_config({"thing_name": "press-7", "mqtt": mqtt}, Path("/etc/edgesim"))


@pytest.mark.parametrize("profile", ["local", "aws"])
def test_mutual_tls_is_accepted(profile: str) -> None:
    check_transport(config(url="mqtts://broker.example:8883", tls=TLS), profile)


@pytest.mark.parametrize(
    ("mqtt", "profile", "message"),
    [
        ({"url": "mqtt://127.0.0.1:1883"}, "local", "mqtt.allow_plaintext: true"),
        ({}, "local", "needs mqtt.tls"),  # the default URL is mqtts:// and there is no certificate
        ({"url": "mqtts://127.0.0.1:8883"}, "aws", "needs mqtt.tls"),
        ({"url": "mqtt://127.0.0.1:1883", "tls": TLS}, "local", "mqtt.tls is for an mqtts:// broker"),
        ({"url": "mqtt://127.0.0.1:1883", "allow_plaintext": True}, "aws", "AWS IoT Core over mutual TLS"),
        ({"url": "mqtt://127.0.0.1:1883"}, "aws", "AWS IoT Core over mutual TLS"),
        ({"url": "http://127.0.0.1:1883"}, "local", "must be mqtt://host:port or mqtts://host:port"),
        ({"url": "mqtts://"}, "local", "must be mqtt://host:port or mqtts://host:port"),
    ],
)
def test_what_a_device_refuses(mqtt: dict[str, Any], profile: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_transport(config(**mqtt), profile)


def test_plain_mqtt_on_local_only_when_allowed_and_then_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="system.edge.backends"):
        check_transport(config(url="mqtt://127.0.0.1:1883", allow_plaintext=True), "local")
    assert "travel unencrypted and unauthenticated to mqtt://127.0.0.1:1883" in caplog.text


def test_allow_plaintext_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.allow_plaintext"):
        config(url="mqtt://127.0.0.1:1883", allow_plaintext="yes")


def test_a_refused_transport_starts_nothing(tmp_path: Path) -> None:
    """build_backends checks before the agent starts: no socket, no folder."""
    from system.config import Settings
    from system.edge.backends import build_backends

    refused = parse_device_config(
        {"thing_name": "press-7", "root": str(tmp_path / "device"), "mqtt": {"url": "mqtt://127.0.0.1:1883"}}, tmp_path
    )
    with pytest.raises(ConfigError, match="plain MQTT"):
        build_backends(refused, Settings(profile="local"), "local")
    assert not (tmp_path / "device").exists()
