"""The device's config file: defaults, paths relative to the file, and a ConfigError naming each bad key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from system.edge.device_config import DeviceConfig, SourceConfig, load_device_config, parse_device_config
from system.errors import ConfigError

BASE = Path("/etc/edgesim")


def parse(**raw: Any) -> DeviceConfig:
    return parse_device_config({"thing_name": "press-7", **raw}, BASE)


def write_config(folder: Path, raw: Any) -> Path:
    path = folder / "device.json"
    path.write_text(json.dumps(raw))
    return path


def test_a_config_with_only_the_thing_name_gets_every_default() -> None:
    config = parse_device_config({"thing_name": "press-7"}, BASE)
    assert config == DeviceConfig(thing_name="press-7", root=BASE / "edgesim-device")
    assert config.source == SourceConfig(type="camera", path=None, order="cycle", seed=0)
    assert config.mqtt_url == "mqtts://127.0.0.1:8883" and config.mqtt_tls is None and not config.mqtt_allow_plaintext
    assert config.step_timeout_minutes == 10 and config.health_enabled and config.health_output_range is None
    assert (config.web_enabled, config.web_host, config.web_port) == (True, "127.0.0.1", 8080)


def test_every_section_is_read() -> None:
    config = parse(
        agent={"target": "unix:///tmp/edge_agent"},
        mqtt={"url": "mqtts://iot.example:8883", "client_id": "press-7-app"},
        object_store={"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1"},
        ota={"step_timeout_minutes": 30, "require_sha256": True, "health_check": {"output_range": [0, 1]}},
        inference={"source": {"type": "folder", "path": "images", "order": "random", "seed": 3}, "rate_hz": 0},
        telemetry={"enabled": False, "batch_size": 10},
        web={"enabled": False, "port": 0},
    )
    assert config.agent_target == "unix:///tmp/edge_agent"
    assert (config.mqtt_url, config.mqtt_client_id) == ("mqtts://iot.example:8883", "press-7-app")
    assert (config.s3_endpoint_url, config.region) == ("http://127.0.0.1:9000", "eu-west-1")
    assert config.step_timeout_minutes == 30 and config.require_sha256
    assert config.health_output_range == (0.0, 1.0)
    assert config.source == SourceConfig(type="folder", path=BASE / "images", order="random", seed=3)
    assert config.rate_hz == 0.0  # 0 pauses the loop: allowed
    assert not config.telemetry_enabled and config.telemetry_batch_size == 10
    assert not config.web_enabled and config.web_port == 0


def test_relative_paths_resolve_against_the_config_files_folder(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "thing_name": "press-7",
            "root": "state",
            "models_config": "conf/models_config.json",
            "agent": {"config": "conf/agent.json"},
            "mqtt": {"tls": {"ca": "pki/ca.pem", "cert": "pki/press-7.pem", "key": "/secure/press-7.key"}},
            "ota": {"signing_public_key": "keys/signing.pub"},
            "inference": {"source": {"type": "folder", "path": "images"}},
        },
    )
    config = load_device_config(path)
    base = tmp_path.resolve()
    assert config.root == base / "state"
    assert config.models_config == base / "conf" / "models_config.json"
    assert config.agent_config == base / "conf" / "agent.json"
    assert config.mqtt_tls == {
        "ca": base / "pki/ca.pem",
        "cert": base / "pki/press-7.pem",
        "key": Path("/secure/press-7.key"),
    }
    assert config.signing_public_key == base / "keys" / "signing.pub"
    assert config.source.path == base / "images"


def test_absolute_and_home_paths_are_kept_as_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = parse(root="/var/lib/edgesim", models_config="~/models_config.json")
    assert config.root == Path("/var/lib/edgesim")
    assert config.models_config == tmp_path / "models_config.json"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"thing_name": "press/7"}, "thing_name"),
        ({"thing_name": "press+"}, "thing_name"),
        ({"thing_name": "#"}, "thing_name"),
        ({"thing_name": ""}, "thing_name"),
        ({"thing_name": None}, "thing_name"),
        ({"thing_name": 7}, "thing_name"),
        ({"ota": {"step_timeout_minutes": 0}}, "ota.step_timeout_minutes"),
        ({"ota": {"step_timeout_minutes": 10081}}, "ota.step_timeout_minutes"),
        ({"ota": {"health_check": {"output_range": [0.0]}}}, "ota.health_check.output_range"),
        ({"ota": {"health_check": {"output_range": [1.0, 0.0]}}}, "ota.health_check.output_range"),
        ({"inference": {"capture_fraction": 1.5}}, "inference.capture_fraction"),
        ({"inference": {"capture_fraction": -0.1}}, "inference.capture_fraction"),
        ({"inference": {"rate_hz": -1}}, "inference.rate_hz"),
        ({"inference": {"threshold": 1}}, "inference.threshold"),
        ({"inference": {"threshold": 0}}, "inference.threshold"),
        ({"inference": {"source": {"type": "video"}}}, "inference.source.type"),
        ({"inference": {"source": {"type": "folder"}}}, "inference.source.path"),
        ({"inference": {"source": {"type": "folder", "path": ""}}}, "inference.source.path"),
        ({"inference": {"source": {"order": "shuffled"}}}, "inference.source.order"),
        ({"web": {"port": 65536}}, "web.port"),
        ({"web": {"port": -1}}, "web.port"),
        ({"mqtt": {"tls": {"ca": "ca.pem", "cert": "cert.pem"}}}, "mqtt.tls"),
        ({"mqtt": {"tls": {"ca": "ca.pem", "cert": "cert.pem", "key": "k.pem", "pass": "x"}}}, "mqtt.tls"),
        ({"mqtt": {"tls": "pki/"}}, "mqtt.tls"),
        ({"mqtt": {"tls": {"ca": "ca.pem", "cert": "cert.pem", "key": 7}}}, "mqtt.tls.key"),
        ({"root": 7}, "root"),
        ({"ota": ["step_timeout_minutes"]}, "'ota'"),
        ({"ota": {"health_check": True}}, "'ota.health_check'"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else value,
)
def test_each_invalid_value_is_a_config_error_naming_its_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_device_config({"thing_name": "press-7", **raw}, BASE)


def test_a_config_without_a_thing_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="thing_name"):
        parse_device_config({}, BASE)


@pytest.mark.parametrize("raw", [[], "press-7", None])
def test_a_config_that_is_not_an_object_is_refused(raw: Any) -> None:
    with pytest.raises(ConfigError, match="must be a JSON object"):
        parse_device_config(raw, BASE)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"inference": {"rate_hz": "fast"}}, "inference.rate_hz must be a number, not 'fast'"),
        ({"web": {"port": "http"}}, "web.port must be an integer, not 'http'"),
        ({"ota": {"step_timeout_minutes": None}}, "ota.step_timeout_minutes must be an integer, not None"),
        ({"ota": {"require_sha256": "false"}}, "ota.require_sha256 must be true or false, not 'false'"),
        ({"web": {"port": True}}, "web.port must be an integer, not True"),
        ({"mqtt": {"client_id": 7}}, "mqtt.client_id must be a string, not 7"),
        ({"object_store": {"endpoint_url": ["x"]}}, "object_store.endpoint_url must be a string"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_config_error_naming_its_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(**section)


def test_loading_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match=f"cannot read the device config {path}"):
        load_device_config(path)


@pytest.mark.parametrize("text", ["{not json", "", "{'thing_name': 'press-7'}"])
def test_loading_a_file_that_is_not_json_is_a_config_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "device.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"cannot read the device config {path}"):
        load_device_config(path)


def test_loading_an_invalid_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"thing_name": "press-7", "web": {"port": 70000}})
    with pytest.raises(ConfigError) as caught:
        load_device_config(path)
    assert str(caught.value).startswith(f"{path}: ") and "web.port" in str(caught.value)


TLS = {"ca": "ca.pem", "cert": "device.crt", "key": "device.key"}


def test_the_aws_section_names_the_credentials_provider() -> None:
    config = parse(
        mqtt={"url": "mqtts://iot.example:8883", "tls": TLS},
        aws={"credentials_endpoint": "c.iot.example", "role_alias": "edgesim-p-device", "refresh_before_expiry": 300},
    )
    assert (config.credentials_endpoint, config.role_alias) == ("c.iot.example", "edgesim-p-device")
    assert config.credentials_refresh_seconds == 300.0
    # What provisioning writes besides (account, bucket, prefixes) is information: read by nothing, refused by nothing.
    assert parse(aws={"account_id": "123456789012", "bucket": "b"}).role_alias is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"aws": {"role_alias": "a"}, "mqtt": {"url": "mqtts://h", "tls": TLS}}, "go together"),
        ({"aws": {"credentials_endpoint": "c"}, "mqtt": {"url": "mqtts://h", "tls": TLS}}, "go together"),
        ({"aws": {"credentials_endpoint": "c", "role_alias": "a"}}, "needs mqtt.tls"),
        ({"aws": {"refresh_before_expiry": 0}}, "aws.refresh_before_expiry"),
        ({"aws": {"role_alias": 7}}, "aws.role_alias"),
    ],
)
def test_an_incomplete_aws_section_is_refused_at_start_up(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(**raw)


def test_on_aws_a_device_without_a_signing_key_refuses_to_start_unless_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from system.edge.device import DeviceApp

    with pytest.raises(ConfigError, match=r"only signed packages: set ota\.signing_public_key"):
        DeviceApp._signing_key(parse(), "aws")
    assert DeviceApp._signing_key(parse(), "local") is None
    with caplog.at_level("WARNING"):
        assert DeviceApp._signing_key(parse(ota={"allow_unsigned": True}), "aws") is None
    assert "installs unsigned packages" in caplog.text
