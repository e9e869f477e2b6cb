"""The backends of `edgesim device run` for each profile (DESIGN.md section 2).

- `local`: paho-mqtt to a broker over mutual TLS (`mqtts://` with the client certificate of
  `mqtt.tls`; a plain `mqtt://` broker only with `mqtt.allow_plaintext: true`, logged as a warning),
  S3 at `object_store.endpoint_url` (a moto server), the agent in-process on `<root>/agent.sock` or
  an external one at `agent.target`.
- `aws`: AWS IoT Core over mutual TLS with awsiotsdk (`mqtt.url` = `mqtts://<ats-endpoint>:8883`),
  S3 with boto3's default credentials.
- `fake`: everything in-process, provided by `simulators/` through the `edgesim.device_profiles`
  entry point (`system` never imports the fakes).

On either real profile, `aws.credentials_endpoint` and `aws.role_alias` (what `edgesim provision`
writes) make S3 use temporary keys from the AWS IoT credentials provider instead, obtained with the
device certificate of `mqtt.tls` and refreshed before they expire (system/adapters/iot_credentials.py).

The synthetic camera source lives in `simulators/` too and is found through the
`edgesim.image_sources` entry point.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlparse

from system.config import AgentSettings, Settings
from system.edge.device import DeviceBackends
from system.edge.device_config import DeviceConfig
from system.edge.image_source import FolderImageSource, ImageSource
from system.errors import ConfigError
from system.ports import MessageBus

_log = logging.getLogger(__name__)


def plugin(group: str, name: str) -> Callable[..., Any]:
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        raise ConfigError(f"nothing provides {name!r} in {group} (is edgesim installed with its simulators?)")
    loaded: Callable[..., Any] = found[0].load()
    return loaded


def build_source(config: DeviceConfig) -> ImageSource:
    source = config.source
    if source.type == "folder":
        assert source.path is not None
        return FolderImageSource(source.path, order=source.order, seed=source.seed)
    camera: ImageSource = plugin("edgesim.image_sources", "camera")(seed=source.seed)
    return camera


def check_transport(config: DeviceConfig, profile: str) -> None:
    """Refuse an MQTT connection without TLS and client certificates, before anything starts.

    A device's broker connection carries the jobs that tell it what to install: in the clear,
    anyone on the path can read and forge them. So `local` and `aws` take `mqtts://` with the
    certificate of `mqtt.tls`. A plain `mqtt://` broker (a developer's Mosquitto on 1883) is accepted
    on `local` only when the config says `mqtt.allow_plaintext: true`, and logged; AWS IoT Core has
    no plaintext listener, so on `aws` it is always refused.
    """
    url = urlparse(config.mqtt_url)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError(f"mqtt.url must be mqtt://host:port or mqtts://host:port, not {config.mqtt_url!r}")
    if url.scheme == "mqtts" and config.mqtt_tls is None:
        raise ConfigError("an mqtts:// broker needs mqtt.tls (ca, cert, key): the device proves who it is")
    if url.scheme == "mqtts":
        return
    if config.mqtt_tls is not None:
        raise ConfigError(f"mqtt.tls is for an mqtts:// broker, and mqtt.url is {config.mqtt_url}")
    if profile == "aws":
        raise ConfigError(f"on the aws profile the broker is AWS IoT Core over mutual TLS, not {config.mqtt_url}")
    if not config.mqtt_allow_plaintext:
        raise ConfigError(
            f"mqtt.url {config.mqtt_url} is plain MQTT: on the {profile} profile a device connects over TLS with "
            "its client certificate (mqtts:// and mqtt.tls; `edgesim cloud up` writes both), or, for a "
            "development broker and knowingly, set mqtt.allow_plaintext: true"
        )
    _log.warning(
        "mqtt.allow_plaintext: jobs and telemetry travel unencrypted and unauthenticated to %s", config.mqtt_url
    )


def _bus(config: DeviceConfig, profile: str) -> MessageBus:
    from system.adapters.tls import TlsFiles

    url = urlparse(config.mqtt_url)
    assert url.hostname is not None  # check_transport
    tls = TlsFiles(**config.mqtt_tls) if config.mqtt_tls else None
    client_id = config.mqtt_client_id or config.thing_name
    if profile == "aws":
        from system.adapters.awsiot_bus import AwsIotMessageBus

        assert tls is not None  # check_transport
        return AwsIotMessageBus(url.hostname, url.port or 8883, client_id, tls, keepalive=45)
    from system.adapters.paho_bus import PahoMessageBus

    return PahoMessageBus(url.hostname, url.port or (8883 if tls else 1883), client_id, tls, keepalive=45)


def _s3_client(config: DeviceConfig) -> Any:
    import boto3

    if config.role_alias is None:
        return boto3.client("s3", endpoint_url=config.s3_endpoint_url, region_name=config.region)
    from system.adapters.iot_credentials import IotCredentialsProvider, iot_credentials_session
    from system.adapters.tls import TlsFiles

    assert config.credentials_endpoint is not None and config.mqtt_tls is not None  # DeviceConfig.validate
    provider = IotCredentialsProvider(
        config.credentials_endpoint, config.role_alias, config.thing_name, TlsFiles(**config.mqtt_tls)
    )
    session = iot_credentials_session(provider, config.region, refresh_before_expiry=config.credentials_refresh_seconds)
    return session.client("s3", endpoint_url=config.s3_endpoint_url)


def build_backends(config: DeviceConfig, settings: Settings, profile: str) -> DeviceBackends:
    """The backends of `profile` for this device (the caller stops them through `closers`)."""
    if profile == "fake":
        fake: DeviceBackends = plugin("edgesim.device_profiles", "fake")(config, settings)
        return fake
    check_transport(config, profile)  # before the agent starts: a refused config starts nothing
    from system.adapters.agent_client import GrpcEdgeAgentClient
    from system.adapters.s3_object_store import S3ObjectStore

    s3 = _s3_client(config)
    closers: list[Callable[[], None]] = []
    target = config.agent_target
    if not target:
        from system.agent.server import EdgeAgent

        agent_settings = replace(settings.agent, socket_path=str(config.root / "agent.sock"), address="")
        if config.agent_config is not None:
            agent_settings = AgentSettings.from_agent_config_file(config.agent_config, agent_settings)
        capture = agent_settings.capture
        store = S3ObjectStore(s3, capture.bucket) if capture.destination == "Cloud" else None
        config.root.mkdir(parents=True, exist_ok=True)
        agent = EdgeAgent(agent_settings, capture_store=store)
        target = agent.start()
        closers.append(agent.stop)
    client = GrpcEdgeAgentClient(target)
    closers.append(client.close)
    return DeviceBackends(
        bus=_bus(config, profile),
        stores=lambda bucket: S3ObjectStore(s3, bucket),
        client=client,
        source=build_source(config),
        agent_target=target,
        closers=closers,
    )
