"""The device's config file (`edgesim device run --config FILE`), JSON:

    {
      "thing_name": "edgesim-device-1",
      "root": "/var/lib/edgesim/device-1",            # the seed's $SM_EDGE_AGENT_HOME
      "models_config": null,                           # default <root>/models_config.json
      "agent": {"target": "", "config": null,          # "" = run the agent in-process on <root>/agent.sock
                "check_interval": 5.0},                # seconds between checks that it still holds the models
      "mqtt": {"url": "mqtts://127.0.0.1:8883", "client_id": null,   # client_id: default thing_name
               "tls": {"ca": "...", "cert": "...", "key": "..."},   # mutual TLS: required on local
               "allow_plaintext": false},                        # and aws (mqtt:// only if allowed, local)
      "object_store": {"endpoint_url": null, "region": "us-east-1"},
      "aws": {"credentials_endpoint": null, "role_alias": null,    # S3 keys from the IoT credentials provider
              "refresh_before_expiry": 600},                   # (mqtt.tls's certificate), else boto3's chain
      "ota": {"step_timeout_minutes": 10, "max_package_bytes": 1073741824, "require_sha256": false,
              "signing_public_key": null, "allow_unsigned": false,   # aws: unsigned only if allowed
              "health_check": {"enabled": true, "output_range": null}},
      "inference": {"source": {"type": "folder", "path": "images", "order": "cycle"},
                    "rate_hz": 2.0, "capture_fraction": 0.1, "threshold": 0.5, "history": 50},
      "telemetry": {"enabled": true, "flush_interval": 5.0, "batch_size": 50, "buffer_size": 1000,
                    "metrics_interval": 10.0},
      "web": {"enabled": true, "host": "127.0.0.1", "port": 8080}
    }

Every key is optional except `thing_name`; relative paths are relative to the config file. A
wrong value is a ConfigError naming the key, at start-up rather than in the middle of a job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system.errors import ConfigError


@dataclass(frozen=True)
class SourceConfig:
    type: str = "camera"  # "folder" or "camera" (the synthetic camera, from simulators/)
    path: Path | None = None
    order: str = "cycle"
    seed: int = 0


@dataclass(frozen=True)
class DeviceConfig:
    thing_name: str
    root: Path
    models_config: Path | None = None
    agent_target: str = ""
    agent_config: Path | None = None
    agent_check_interval: float = 5.0  # the agent watch's ListModels period (agent_watch.py)
    mqtt_url: str = "mqtts://127.0.0.1:8883"
    mqtt_client_id: str | None = None
    mqtt_tls: Mapping[str, Path] | None = None
    mqtt_allow_plaintext: bool = False  # local only: accept a plain mqtt:// broker (backends.check_transport)
    s3_endpoint_url: str | None = None
    region: str = "us-east-1"
    # The AWS IoT credentials provider (system/adapters/iot_credentials.py): both set, or neither.
    credentials_endpoint: str | None = None
    role_alias: str | None = None
    credentials_refresh_seconds: float = 600.0
    step_timeout_minutes: int = 10
    max_package_bytes: int = 1024**3
    require_sha256: bool = False
    signing_public_key: Path | None = None
    allow_unsigned: bool = False  # the aws profile refuses to run without a signing key unless this is set
    health_enabled: bool = True
    health_output_range: tuple[float, float] | None = None
    source: SourceConfig = field(default_factory=SourceConfig)
    rate_hz: float = 2.0
    capture_fraction: float = 0.0
    threshold: float = 0.5
    history: int = 50
    telemetry_enabled: bool = True
    telemetry_flush_interval: float = 5.0
    telemetry_batch_size: int = 50
    telemetry_buffer_size: int = 1000
    metrics_interval: float = 10.0
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 8080

    def validate(self) -> None:
        if not self.thing_name or "/" in self.thing_name or "+" in self.thing_name or "#" in self.thing_name:
            raise ConfigError(f"thing_name {self.thing_name!r} must be a non-empty MQTT topic level")
        if not 1 <= self.step_timeout_minutes <= 10080:
            raise ConfigError("ota.step_timeout_minutes must be 1-10080 (the IoT Jobs limits)")
        span = self.health_output_range
        if span is not None and (len(span) != 2 or not span[0] <= span[1]):
            raise ConfigError("ota.health_check.output_range must be [low, high] with low <= high")
        if not 0.0 <= self.capture_fraction <= 1.0:
            raise ConfigError("inference.capture_fraction must be between 0 and 1")
        if not self.agent_check_interval > 0:
            raise ConfigError("agent.check_interval must be > 0 seconds")
        if self.rate_hz < 0:
            raise ConfigError("inference.rate_hz must be >= 0 (0 pauses the loop)")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError("inference.threshold must be between 0 and 1")
        if self.source.type not in ("folder", "camera"):
            raise ConfigError(f"inference.source.type must be folder or camera, not {self.source.type!r}")
        if self.source.type == "folder" and self.source.path is None:
            raise ConfigError("inference.source.path is required for a folder source")
        if self.source.order not in ("cycle", "random"):
            raise ConfigError("inference.source.order must be cycle or random")
        if not 0 <= self.web_port <= 65535:
            raise ConfigError("web.port must be 0-65535")
        self._validate_credentials_provider()

    def _validate_credentials_provider(self) -> None:
        if (self.credentials_endpoint is None) != (self.role_alias is None):
            raise ConfigError("aws.credentials_endpoint and aws.role_alias go together: set both, or neither")
        if self.role_alias is not None and self.mqtt_tls is None:
            raise ConfigError("aws.role_alias needs mqtt.tls: the credentials provider takes the device certificate")
        if not self.credentials_refresh_seconds > 0:
            raise ConfigError("aws.refresh_before_expiry must be > 0 seconds")


class _Section:
    """Typed reads of one JSON object of the config; a wrong type is a ConfigError naming the key."""

    def __init__(self, raw: object, name: str, base: Path) -> None:
        if raw is None and name:
            raw = {}  # an absent (or null) section takes every default
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{name!r} must be an object" if name else "the device config must be a JSON object")
        self.raw, self.name, self.base = raw, name, base

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def section(self, key: str) -> _Section:
        return _Section(self.raw.get(key), self.key(key), self.base)

    def _get(self, key: str, kinds: tuple[type, ...], default: Any, what: str) -> Any:
        value = self.raw.get(key, default)
        if value is None and default is None:
            return None
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ConfigError(f"{self.key(key)} must be {what}, not {value!r}")
        return value

    def str_(self, key: str, default: str | None) -> Any:
        return self._get(key, (str,), default, "a string")

    def int_(self, key: str, default: int) -> int:
        return int(self._get(key, (int,), default, "an integer"))

    def float_(self, key: str, default: float) -> float:
        return float(self._get(key, (int, float), default, "a number"))

    def bool_(self, key: str, default: bool) -> bool:
        return bool(self._get(key, (bool,), default, "true or false"))

    def path_(self, key: str, default: str | None = None) -> Path | None:
        value = self.str_(key, default)
        if value is None:
            return None
        if not value:
            raise ConfigError(f"{self.key(key)} must be a path, not an empty string")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path


def _tls(mqtt: _Section) -> dict[str, Path] | None:
    raw = mqtt.raw.get("tls")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"ca", "cert", "key"}:
        raise ConfigError("mqtt.tls needs exactly ca, cert and key paths")
    tls = mqtt.section("tls")
    paths = {k: tls.path_(k) for k in ("ca", "cert", "key")}
    missing = sorted(k for k, path in paths.items() if path is None)
    if missing:
        raise ConfigError(f"mqtt.tls.{missing[0]} must be a path, not null")
    return {k: path for k, path in paths.items() if path is not None}


def _output_range(health: _Section) -> tuple[float, float] | None:
    raw = health.raw.get("output_range")
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 2 or not all(isinstance(v, (int, float)) for v in raw):
        raise ConfigError(f"ota.health_check.output_range must be [low, high], not {raw!r}")
    return float(raw[0]), float(raw[1])


def parse_device_config(raw: object, base: Path) -> DeviceConfig:
    """A DeviceConfig from the parsed JSON; `base` resolves relative paths."""
    top = _Section(raw, "", base)
    thing_name = top.str_("thing_name", "")  # never str(): null would become a thing named "None"
    agent, mqtt, store, aws = (top.section(k) for k in ("agent", "mqtt", "object_store", "aws"))
    ota, inference, telemetry, web = (top.section(k) for k in ("ota", "inference", "telemetry", "web"))
    health, source = ota.section("health_check"), inference.section("source")
    config = DeviceConfig(
        thing_name=thing_name,
        root=top.path_("root", "edgesim-device") or base,
        models_config=top.path_("models_config"),
        agent_target=agent.str_("target", ""),
        agent_config=agent.path_("config"),
        agent_check_interval=agent.float_("check_interval", DeviceConfig.agent_check_interval),
        mqtt_url=mqtt.str_("url", DeviceConfig.mqtt_url),
        mqtt_client_id=mqtt.str_("client_id", None),
        mqtt_tls=_tls(mqtt),
        mqtt_allow_plaintext=mqtt.bool_("allow_plaintext", False),
        s3_endpoint_url=store.str_("endpoint_url", None),
        region=store.str_("region", DeviceConfig.region),
        credentials_endpoint=aws.str_("credentials_endpoint", None) or None,
        role_alias=aws.str_("role_alias", None) or None,
        credentials_refresh_seconds=aws.float_("refresh_before_expiry", DeviceConfig.credentials_refresh_seconds),
        step_timeout_minutes=ota.int_("step_timeout_minutes", DeviceConfig.step_timeout_minutes),
        max_package_bytes=ota.int_("max_package_bytes", DeviceConfig.max_package_bytes),
        require_sha256=ota.bool_("require_sha256", False),
        signing_public_key=ota.path_("signing_public_key"),
        allow_unsigned=ota.bool_("allow_unsigned", False),
        health_enabled=health.bool_("enabled", True),
        health_output_range=_output_range(health),
        source=SourceConfig(
            type=source.str_("type", "camera"),
            path=source.path_("path"),
            order=source.str_("order", "cycle"),
            seed=source.int_("seed", 0),
        ),
        rate_hz=inference.float_("rate_hz", DeviceConfig.rate_hz),
        capture_fraction=inference.float_("capture_fraction", DeviceConfig.capture_fraction),
        threshold=inference.float_("threshold", DeviceConfig.threshold),
        history=inference.int_("history", DeviceConfig.history),
        telemetry_enabled=telemetry.bool_("enabled", True),
        telemetry_flush_interval=telemetry.float_("flush_interval", DeviceConfig.telemetry_flush_interval),
        telemetry_batch_size=telemetry.int_("batch_size", DeviceConfig.telemetry_batch_size),
        telemetry_buffer_size=telemetry.int_("buffer_size", DeviceConfig.telemetry_buffer_size),
        metrics_interval=telemetry.float_("metrics_interval", DeviceConfig.metrics_interval),
        web_enabled=web.bool_("enabled", True),
        web_host=web.str_("host", DeviceConfig.web_host),
        web_port=web.int_("port", DeviceConfig.web_port),
    )
    config.validate()
    return config


def load_device_config(path: Path) -> DeviceConfig:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the device config {path}: {exc}") from exc
    try:
        return parse_device_config(raw, path.parent.resolve())
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
