"""The device's config file (`edgesim device run --config FILE`), JSON:

    {
      "thing_name": "edgesim-device-1",
      "root": "/var/lib/edgesim/device-1",            # the seed's $SM_EDGE_AGENT_HOME
      "models_config": null,                           # default <root>/models_config.json
      "agent": {"target": "", "config": null},         # "" = run the agent in-process on <root>/agent.sock
      "mqtt": {"url": "mqtt://127.0.0.1:1883", "client_id": null,
               "tls": {"ca": "...", "cert": "...", "key": "..."}},
      "object_store": {"endpoint_url": null, "region": "us-east-1"},
      "ota": {"step_timeout_minutes": 10, "max_package_bytes": 1073741824, "require_sha256": false,
              "signing_public_key": null, "health_check": {"enabled": true, "output_range": null}},
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
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_client_id: str | None = None
    mqtt_tls: Mapping[str, Path] | None = None
    s3_endpoint_url: str | None = None
    region: str = "us-east-1"
    step_timeout_minutes: int = 10
    max_package_bytes: int = 1024**3
    require_sha256: bool = False
    signing_public_key: Path | None = None
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
        if not 0.0 <= self.capture_fraction <= 1.0:
            raise ConfigError("inference.capture_fraction must be between 0 and 1")
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


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name!r} must be an object")
    return value


def _path(base: Path, value: object, key: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a path string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_device_config(raw: object, base: Path) -> DeviceConfig:
    """A DeviceConfig from the parsed JSON; `base` resolves relative paths."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the device config must be a JSON object")
    try:
        agent, mqtt, store = _section(raw, "agent"), _section(raw, "mqtt"), _section(raw, "object_store")
        ota, inference, telemetry, web = (_section(raw, k) for k in ("ota", "inference", "telemetry", "web"))
        health = _section(ota, "health_check")
        source = _section(inference, "source")
        tls_raw = mqtt.get("tls")
        tls = None
        if tls_raw is not None:
            if not isinstance(tls_raw, Mapping) or set(tls_raw) != {"ca", "cert", "key"}:
                raise ConfigError("mqtt.tls needs exactly ca, cert and key paths")
            tls = {k: _path(base, v, f"mqtt.tls.{k}") for k, v in tls_raw.items()}
        output_range = health.get("output_range")
        config = DeviceConfig(
            thing_name=str(raw.get("thing_name", "")),
            root=_path(base, raw.get("root", "edgesim-device"), "root") or base,
            models_config=_path(base, raw.get("models_config"), "models_config"),
            agent_target=str(agent.get("target", "")),
            agent_config=_path(base, agent.get("config"), "agent.config"),
            mqtt_url=str(mqtt.get("url", DeviceConfig.mqtt_url)),
            mqtt_client_id=mqtt.get("client_id"),
            mqtt_tls=tls,  # type: ignore[arg-type]
            s3_endpoint_url=store.get("endpoint_url"),
            region=str(store.get("region", DeviceConfig.region)),
            step_timeout_minutes=int(ota.get("step_timeout_minutes", DeviceConfig.step_timeout_minutes)),
            max_package_bytes=int(ota.get("max_package_bytes", DeviceConfig.max_package_bytes)),
            require_sha256=bool(ota.get("require_sha256", False)),
            signing_public_key=_path(base, ota.get("signing_public_key"), "ota.signing_public_key"),
            health_enabled=bool(health.get("enabled", True)),
            health_output_range=tuple(float(v) for v in output_range) if output_range else None,  # type: ignore[arg-type]
            source=SourceConfig(
                type=str(source.get("type", "camera")),
                path=_path(base, source.get("path"), "inference.source.path"),
                order=str(source.get("order", "cycle")),
                seed=int(source.get("seed", 0)),
            ),
            rate_hz=float(inference.get("rate_hz", DeviceConfig.rate_hz)),
            capture_fraction=float(inference.get("capture_fraction", DeviceConfig.capture_fraction)),
            threshold=float(inference.get("threshold", DeviceConfig.threshold)),
            history=int(inference.get("history", DeviceConfig.history)),
            telemetry_enabled=bool(telemetry.get("enabled", True)),
            telemetry_flush_interval=float(telemetry.get("flush_interval", DeviceConfig.telemetry_flush_interval)),
            telemetry_batch_size=int(telemetry.get("batch_size", DeviceConfig.telemetry_batch_size)),
            telemetry_buffer_size=int(telemetry.get("buffer_size", DeviceConfig.telemetry_buffer_size)),
            metrics_interval=float(telemetry.get("metrics_interval", DeviceConfig.metrics_interval)),
            web_enabled=bool(web.get("enabled", True)),
            web_host=str(web.get("host", DeviceConfig.web_host)),
            web_port=int(web.get("port", DeviceConfig.web_port)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"device config: {exc}") from exc
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
